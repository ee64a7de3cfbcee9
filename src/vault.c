/*-------------------------------------------------------------------------
 *
 * vault.c
 *	  The vault's root key (issue 14, first part): read once at server start
 *	  from the file unkey.vault_key_file names, kept in libsodium's guarded
 *	  memory, and never returned to SQL.
 *
 * The file lies outside the data directory (a base backup must not carry
 * the key beside the ciphertexts it protects), is readable by its owner
 * only, and holds 32 bytes as 64 hexadecimal digits or in base64 (standard
 * alphabet, padding optional), surrounded by whitespace at most.  Anything
 * else stops the server from starting: a vault that silently runs without
 * its key, or with a wrong one, would fail later and worse.  Without the
 * setting everything but the vault works, and the vault fails closed with
 * 55000 and a hint.
 *
 * The postmaster reads the key into sodium_malloc memory (guard pages,
 * locked, excluded from core dumps), wipes its read buffer, and makes the
 * page read-only.  Backends inherit the page by fork, but not its lock
 * (mlock is not inherited), so each locks its copy again the first time
 * it needs the key.  There is no shared state and no locking: the key is
 * written once, before any backend exists.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "utils.h"
#include "vault.h"

#define VAULT_FILE_MAX 256		/* 64 hex digits or 44 base64 characters, and whitespace */
#define VAULT_KEY_ID_BYTES 8

static char *vault_key_file = NULL;
static unsigned char *vault_key = NULL; /* UNKEY_VAULT_KEY_BYTES, read-only */
static unsigned char vault_key_id[VAULT_KEY_ID_BYTES];
static pid_t vault_locked_by = 0;	/* the process that has locked its copy */

/* Stop the server from starting: the key file is unusable */
static void
VaultRefuse(const char *why, const char *hint)
{
	ereport(FATAL,
			(errcode(ERRCODE_CONFIG_FILE_ERROR),
			 errmsg("unkey.vault_key_file \"%s\" %s", vault_key_file, why),
			 hint ? errhint("%s", hint) : 0));
}

/* The 32 bytes of a key file's text, hex or base64; false if it is neither */
static bool
VaultDecode(const char *text, size_t len, unsigned char *key)
{
	size_t		n = 0;

	if (len == 2 * UNKEY_VAULT_KEY_BYTES &&
		sodium_hex2bin(key, UNKEY_VAULT_KEY_BYTES, text, len, NULL, &n, NULL) == 0 &&
		n == UNKEY_VAULT_KEY_BYTES)
		return true;
	return (sodium_base642bin(key, UNKEY_VAULT_KEY_BYTES, text, len, NULL, &n, NULL,
							  sodium_base64_VARIANT_ORIGINAL) == 0 ||
			sodium_base642bin(key, UNKEY_VAULT_KEY_BYTES, text, len, NULL, &n, NULL,
							  sodium_base64_VARIANT_ORIGINAL_NO_PADDING) == 0) &&
		n == UNKEY_VAULT_KEY_BYTES;
}

/* Read the root key at server start; any problem stops the server */
static void
VaultLoad(void)
{
	char		path[MAXPGPATH];
	char		real[PATH_MAX];
	char		data_dir[PATH_MAX];
	char		buf[VAULT_FILE_MAX + 1];
	unsigned char key[UNKEY_VAULT_KEY_BYTES];
	struct stat st;
	int			fd;
	ssize_t		got;
	size_t		len;
	char	   *text = buf;
	bool		ok;

	strlcpy(path, vault_key_file, sizeof(path));
	canonicalize_path(path);
	if (!is_absolute_path(path))
		VaultRefuse("is not an absolute path", "Name the key file by its absolute path, outside the data directory.");
	/* with symbolic links resolved, so that a link cannot lead into the data directory */
	if (realpath(path, real) == NULL)
		VaultRefuse("cannot be read", "Check that the file exists and that the server's OS user can read it.");
	if (realpath(DataDir, data_dir) == NULL)
		strlcpy(data_dir, DataDir, sizeof(data_dir));
	if (path_is_prefix_of_path(data_dir, real))
		VaultRefuse("is inside the data directory",
					"Keep the key outside the data directory, so that backups of the data do not carry it.");

	/* read(2), not stdio, so that no library buffer keeps a copy; the checks on the file opened */
	fd = OpenTransientFile(real, O_RDONLY | PG_BINARY);
	if (fd < 0)
		VaultRefuse("cannot be read", "Check that the file exists and that the server's OS user can read it.");
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		VaultRefuse("is not a regular file", NULL);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		VaultRefuse("can be read by other users than its owner", "chmod 600 the key file.");
	got = read(fd, buf, sizeof(buf));
	CloseTransientFile(fd);
	len = got < 0 ? 0 : (size_t) got;
	buf[Min(len, VAULT_FILE_MAX)] = '\0';

	/* whitespace around the key (a trailing newline) is not part of it */
	while (len > 0 && len <= VAULT_FILE_MAX && isspace((unsigned char) text[len - 1]))
		len--;
	while (len > 0 && len <= VAULT_FILE_MAX && isspace((unsigned char) *text))
	{
		text++;
		len--;
	}
	ok = len <= VAULT_FILE_MAX && VaultDecode(text, len, key);
	sodium_memzero(buf, sizeof(buf));
	if (!ok)
	{
		sodium_memzero(key, sizeof(key));
		VaultRefuse("does not hold a key of 32 bytes",
					"Write 32 random bytes as 64 hexadecimal digits or in base64, for example with: openssl rand -hex 32");
	}

	vault_key = sodium_malloc(UNKEY_VAULT_KEY_BYTES);
	if (vault_key == NULL)
	{
		sodium_memzero(key, sizeof(key));
		VaultRefuse("could not be kept in guarded memory", "Check the server's memory limits.");
	}
	memcpy(vault_key, key, UNKEY_VAULT_KEY_BYTES);
	sodium_memzero(key, sizeof(key));
	/* sodium_malloc ignores a failed mlock: say so */
	if (sodium_mlock(vault_key, UNKEY_VAULT_KEY_BYTES) != 0)
		ereport(WARNING,
				(errmsg("unkey: could not lock the vault key in memory: it may be swapped out"),
				 errhint("Raise the server's RLIMIT_MEMLOCK (ulimit -l), or run without swap.")));
	/* an id to tell root keys apart (rotation), a one-way function of the key */
	crypto_generichash(vault_key_id, sizeof(vault_key_id), (const unsigned char *) "unkey vault key id", 18,
					   vault_key, UNKEY_VAULT_KEY_BYTES);
	sodium_mprotect_readonly(vault_key);
	vault_locked_by = MyProcPid;
}

/*
 * The root key, for this backend's encryption and decryption only; 55000
 * when the server runs without one.  Locks this process's copy of the page
 * the first time.
 */
const unsigned char *
UnkeyVaultKey(void)
{
	if (vault_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the vault is not configured"),
				 errhint("Set unkey.vault_key_file to a file outside the data directory holding a 32-byte key "
						 "(unkey in shared_preload_libraries), and restart the server.")));
	if (vault_locked_by != MyProcPid)
	{
		if (sodium_mlock(vault_key, UNKEY_VAULT_KEY_BYTES) != 0)
			ereport(WARNING,
					(errmsg("unkey: could not lock the vault key in memory: it may be swapped out"),
					 errhint("Raise the server's RLIMIT_MEMLOCK (ulimit -l), or run without swap.")));
		vault_locked_by = MyProcPid;
	}
	return vault_key;
}

PG_FUNCTION_INFO_V1(unkey_vault_info);

/* unkey_vault_info(): whether the server has a root key, and its id (never the key) */
Datum
unkey_vault_info(PG_FUNCTION_ARGS)
{
	TupleDesc	desc = UnkeyResultDesc(fcinfo);
	Datum		values[2];
	bool		nulls[2] = {false, vault_key == NULL};
	char		hex[2 * VAULT_KEY_ID_BYTES + 1];

	values[0] = BoolGetDatum(vault_key != NULL);
	if (vault_key != NULL)
	{
		sodium_bin2hex(hex, sizeof(hex), vault_key_id, sizeof(vault_key_id));
		values[1] = CStringGetTextDatum(hex);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* The setting; the key is read at server start, so the library must be preloaded */
void
VaultInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomStringVariable("unkey.vault_key_file",
							   gettext_noop("File holding the vault's 32-byte root key (hex or base64), outside the data directory."),
							   gettext_noop("Read once at server start; empty runs without the vault."),
							   &vault_key_file,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	if (vault_key_file != NULL && vault_key_file[0] != '\0')
		VaultLoad();
}
