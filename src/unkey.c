/*-------------------------------------------------------------------------
 *
 * unkey.c
 *	  Module entry point: the magic block, and _PG_init, which initialises
 *	  libsodium and then each subsystem, pgvector-style.
 *
 * Each subsystem defines its own settings and hooks in its XxxInit();
 * the limiter, the event pipeline and the vault define theirs only when the
 * library is preloaded, since their shared memory is requested, and the
 * vault's key read, at server start.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "events.h"
#include "gateway.h"
#include "limiter.h"
#include "utils.h"
#include "vault.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Initialise libsodium, which keys and the limiter use, then every subsystem */
void
_PG_init(void)
{
	if (sodium_init() < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("unkey: could not initialise libsodium")));

	UtilsInit();
	LimiterInit();
	EventsInit();
	VaultInit();
	V2Init();

	MarkGUCPrefixReserved("unkey");
}
