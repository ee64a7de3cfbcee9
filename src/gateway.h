/*-------------------------------------------------------------------------
 *
 * gateway.h
 *	  The PostgREST faces (gateway.c: unkey.pre_request; v2.c: Unkey's v2
 *	  API): reading the request PostgREST describes in its settings, and
 *	  verifying a key as SQL would.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_GATEWAY_H
#define UNKEY_GATEWAY_H

#include "postgres.h"

/* Top-level string fields of a JSON object's text (request.headers): false if it is not an object */
extern bool UnkeyScanFields(const char *json, int n, const char **names, char **values);

/* The client's address from X-Forwarded-For and X-Real-IP, as an inet Datum (*isnull if none) */
extern Datum UnkeyClientAddress(char *forwarded, char *real_ip, bool *isnull);

/* unkey_verify_key(args[0..6]) called as SQL would; its row in v, vn (VerificationColumn order) */
extern void UnkeyCallVerify(Datum *args, bool *argnull, Datum *v, bool *vn);

/* v2.c: the analytics sandbox's settings; called from _PG_init */
extern void V2Init(void);

#endif							/* UNKEY_GATEWAY_H */
