/*-------------------------------------------------------------------------
 *
 * permissions.h
 *	  The permission query language for PostgreSQL callers: parsing with
 *	  the designed errors, and matching against granted permissions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_PERMISSIONS_H
#define UNKEY_PERMISSIONS_H

#include "postgres.h"

#include "permquery.h"

extern int	UnkeyParsePermissionQuery(text *query, PQItem *items);
extern bool UnkeyPermissionsMatch(text *query, PQItem *items, int nitems,
								  Datum *sorted_perms, int nperms);

#endif							/* UNKEY_PERMISSIONS_H */
