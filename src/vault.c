/*-------------------------------------------------------------------------
 *
 * vault.c
 *	  Recoverable keys (issue 14): the root keys, read once at server start
 *	  and kept in libsodium's guarded memory; envelope encryption of keys
 *	  under a data key per API; and the check that whoever asks to decrypt
 *	  may.  No function returns a root key or a data key to SQL.
 *
 * A key file lies outside the data directory (a base backup must not carry
 * the key beside the ciphertexts it protects), is readable by its owner
 * only, and holds 32 bytes as 64 hexadecimal digits or in base64 (standard
 * alphabet, padding optional), surrounded by whitespace at most.  Anything
 * else stops the server from starting: a vault that silently runs without
 * its key, or with a wrong one, would fail later and worse.  Without the
 * setting everything but the vault works, and the vault fails closed with
 * 55000 and a hint.  During a rotation a second file, the previous key,
 * still unwraps the data keys that unkey_vault_rotate() has not re-wrapped.
 *
 * Envelope: each recoverable API has a random data key, stored only wrapped
 * (XChaCha20-Poly1305 under a root key, its API id as associated data) with
 * the id of the root key that wraps it.  A key's plaintext is sealed under
 * its API's data key (XChaCha20-Poly1305, random 192-bit nonce, the key id
 * and API id as associated data) and must hash to the key's own hash when
 * opened.  Unwrapped data keys live on the stack of one call and are wiped
 * on every path out of it.
 *
 * The postmaster reads the keys into sodium_malloc memory (guard pages,
 * locked, excluded from core dumps), wipes its read buffer, and makes the
 * pages read-only.  Backends inherit the pages by fork, but not their lock
 * (mlock is not inherited), so each locks its copy again the first time
 * it needs a key.  There is no shared state and no locking: the keys are
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
#include "catalog/namespace.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/guc.h"

#include "utils.h"
#include "vault.h"

#define VAULT_FILE_MAX 256		/* 64 hex digits or 44 base64 characters, and whitespace */
#define VAULT_KEY_ID_BYTES 8
#define VAULT_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define VAULT_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define VAULT_DEK_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define VAULT_WRAPPED_BYTES (VAULT_NONCE + VAULT_DEK_BYTES + VAULT_TAG)
#define VAULT_DECRYPT_ROLE "unkey_decrypt"

/* A root key: the current one, and the previous one during a rotation */
typedef struct VaultRootKey
{
	const char *setting;		/* the name of its setting */
	char	   *file;			/* the setting's value */
	unsigned char *key;			/* UNKEY_VAULT_KEY_BYTES, read-only; NULL without */
	char		id[2 * VAULT_KEY_ID_BYTES + 1]; /* hex, a one-way function of the key */
	pid_t		locked_by;		/* the process that has locked its copy */
} VaultRootKey;

static VaultRootKey vault_current = {"unkey.vault_key_file"};
static VaultRootKey vault_previous = {"unkey.vault_previous_key_file"};

/* Stop the server from starting: a key file is unusable */
static void
VaultRefuse(VaultRootKey *rk, const char *why, const char *hint)
{
	ereport(FATAL,
			(errcode(ERRCODE_CONFIG_FILE_ERROR),
			 errmsg("%s \"%s\" %s", rk->setting, rk->file, why),
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

/* Read a root key at server start; any problem stops the server */
static void
VaultLoad(VaultRootKey *rk)
{
	char		path[MAXPGPATH];
	char		real[PATH_MAX];
	char		data_dir[PATH_MAX];
	char		buf[VAULT_FILE_MAX + 1];
	unsigned char key[UNKEY_VAULT_KEY_BYTES];
	unsigned char id[VAULT_KEY_ID_BYTES];
	struct stat st;
	int			fd;
	ssize_t		got;
	size_t		len;
	char	   *text = buf;
	bool		ok;

	strlcpy(path, rk->file, sizeof(path));
	canonicalize_path(path);
	if (!is_absolute_path(path))
		VaultRefuse(rk, "is not an absolute path", "Name the key file by its absolute path, outside the data directory.");
	/* with symbolic links resolved, so that a link cannot lead into the data directory */
	if (realpath(path, real) == NULL)
		VaultRefuse(rk, "cannot be read", "Check that the file exists and that the server's OS user can read it.");
	if (realpath(DataDir, data_dir) == NULL)
		strlcpy(data_dir, DataDir, sizeof(data_dir));
	if (path_is_prefix_of_path(data_dir, real))
		VaultRefuse(rk, "is inside the data directory",
					"Keep the key outside the data directory, so that backups of the data do not carry it.");

	/* read(2), not stdio, so that no library buffer keeps a copy; the checks on the file opened */
	fd = OpenTransientFile(real, O_RDONLY | PG_BINARY);
	if (fd < 0)
		VaultRefuse(rk, "cannot be read", "Check that the file exists and that the server's OS user can read it.");
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		VaultRefuse(rk, "is not a regular file", NULL);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		VaultRefuse(rk, "can be read by other users than its owner", "chmod 600 the key file.");
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
		VaultRefuse(rk, "does not hold a key of 32 bytes",
					"Write 32 random bytes as 64 hexadecimal digits or in base64, for example with: openssl rand -hex 32");
	}

	rk->key = sodium_malloc(UNKEY_VAULT_KEY_BYTES);
	if (rk->key == NULL)
	{
		sodium_memzero(key, sizeof(key));
		VaultRefuse(rk, "could not be kept in guarded memory", "Check the server's memory limits.");
	}
	memcpy(rk->key, key, UNKEY_VAULT_KEY_BYTES);
	sodium_memzero(key, sizeof(key));
	/* sodium_malloc ignores a failed mlock: say so */
	if (sodium_mlock(rk->key, UNKEY_VAULT_KEY_BYTES) != 0)
		ereport(WARNING,
				(errmsg("unkey: could not lock the vault key in memory: it may be swapped out"),
				 errhint("Raise the server's RLIMIT_MEMLOCK (ulimit -l), or run without swap.")));
	/* an id to tell root keys apart (rotation), a one-way function of the key */
	crypto_generichash(id, sizeof(id), (const unsigned char *) "unkey vault key id", 18,
					   rk->key, UNKEY_VAULT_KEY_BYTES);
	sodium_bin2hex(rk->id, sizeof(rk->id), id, sizeof(id));
	sodium_mprotect_readonly(rk->key);
	rk->locked_by = MyProcPid;
}

/* A loaded root key, its page locked in this process the first time it is used */
static const unsigned char *
VaultUse(VaultRootKey *rk)
{
	if (rk->locked_by != MyProcPid)
	{
		if (sodium_mlock(rk->key, UNKEY_VAULT_KEY_BYTES) != 0)
			ereport(WARNING,
					(errmsg("unkey: could not lock the vault key in memory: it may be swapped out"),
					 errhint("Raise the server's RLIMIT_MEMLOCK (ulimit -l), or run without swap.")));
		rk->locked_by = MyProcPid;
	}
	return rk->key;
}

/*
 * The current root key, for this backend's encryption and decryption only;
 * 55000 when the server runs without one.
 */
const unsigned char *
UnkeyVaultKey(void)
{
	if (vault_current.key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the vault is not configured"),
				 errhint("Set unkey.vault_key_file to a file outside the data directory holding a 32-byte key "
						 "(unkey in shared_preload_libraries), and restart the server.")));
	return VaultUse(&vault_current);
}

/* The root key with this id, current or previous; 55000 if the server has neither */
static const unsigned char *
VaultKeyById(const char *id, const char *api_id)
{
	(void) UnkeyVaultKey();
	if (strcmp(id, vault_current.id) == 0)
		return VaultUse(&vault_current);
	if (vault_previous.key != NULL && strcmp(id, vault_previous.id) == 0)
		return VaultUse(&vault_previous);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("the data key of API %s is wrapped by root key %s, which this server does not have", api_id, id),
			 errhint("Start the server with that key in unkey.vault_key_file, or in unkey.vault_previous_key_file "
					 "and run unkey_vault_rotate().")));
	return NULL;
}

/*
 * Associated data: a domain, then each part and a NUL, so that no two
 * lists of parts give the same bytes.  A ciphertext moved to another row,
 * or a data key to another API, then fails to authenticate.
 */
static StringInfo
VaultAd(const char *domain, text *a, text *b)
{
	StringInfo	ad = makeStringInfo();

	appendStringInfoString(ad, domain);
	appendStringInfoChar(ad, '\0');
	appendBinaryStringInfo(ad, VARDATA_ANY(a), VARSIZE_ANY_EXHDR(a));
	appendStringInfoChar(ad, '\0');
	if (b != NULL)
	{
		appendBinaryStringInfo(ad, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
		appendStringInfoChar(ad, '\0');
	}
	return ad;
}

/* Seal msg under key with a random nonce: nonce || ciphertext || tag, as bytea */
static bytea *
VaultSeal(const unsigned char *msg, size_t len, StringInfo ad, const unsigned char *key)
{
	bytea	   *out = palloc(VARHDRSZ + VAULT_NONCE + len + VAULT_TAG);
	unsigned char *nonce = (unsigned char *) VARDATA(out);

	SET_VARSIZE(out, VARHDRSZ + VAULT_NONCE + len + VAULT_TAG);
	randombytes_buf(nonce, VAULT_NONCE);
	crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + VAULT_NONCE, NULL, msg, len,
											   (unsigned char *) ad->data, ad->len, NULL, nonce, key);
	return out;
}

/* Open a sealed value into out (room for its length less nonce and tag); false if it does not authenticate */
static bool
VaultOpen(bytea *sealed, StringInfo ad, const unsigned char *key, unsigned char *out, size_t *outlen)
{
	size_t		len = VARSIZE_ANY_EXHDR(sealed);
	unsigned char *nonce = (unsigned char *) VARDATA_ANY(sealed);
	unsigned long long n = 0;

	if (len < VAULT_NONCE + VAULT_TAG ||
		crypto_aead_xchacha20poly1305_ietf_decrypt(out, &n, NULL, nonce + VAULT_NONCE, len - VAULT_NONCE,
												   (unsigned char *) ad->data, ad->len, nonce, key) != 0)
		return false;
	*outlen = (size_t) n;
	return true;
}

/* Unwrap the data key of an API into dek (VAULT_DEK_BYTES); XX001 if it does not authenticate */
static void
VaultUnwrap(text *api_id, text *root_key_id, bytea *wrapped, unsigned char *dek)
{
	char	   *api = text_to_cstring(api_id);
	const unsigned char *root = VaultKeyById(text_to_cstring(root_key_id), api);
	size_t		len = 0;

	if (VARSIZE_ANY_EXHDR(wrapped) != VAULT_WRAPPED_BYTES ||
		!VaultOpen(wrapped, VaultAd("unkey data key", api_id, NULL), root, dek, &len) ||
		len != VAULT_DEK_BYTES)
	{
		sodium_memzero(dek, VAULT_DEK_BYTES);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the data key of API %s does not decrypt", api),
				 errhint("Its stored form was altered or copied from another API; restore unkey.vault_data_keys from a backup.")));
	}
}

PG_FUNCTION_INFO_V1(unkey_vault_new_data_key);

/*
 * unkey._vault_new_data_key(api_id): a random data key for an API, wrapped
 * by the current root key; the unwrapped key never leaves this function.
 */
Datum
unkey_vault_new_data_key(PG_FUNCTION_ARGS)
{
	const unsigned char *root = UnkeyVaultKey();
	TupleDesc	desc = UnkeyResultDesc(fcinfo);
	unsigned char dek[VAULT_DEK_BYTES];
	Datum		values[2];
	bool		nulls[2] = {false, false};
	bytea	   *volatile wrapped = NULL;

	PG_TRY();
	{
		crypto_aead_xchacha20poly1305_ietf_keygen(dek);
		wrapped = VaultSeal(dek, sizeof(dek), VaultAd("unkey data key", PG_GETARG_TEXT_PP(0), NULL), root);
	}
	PG_FINALLY();
	{
		sodium_memzero(dek, sizeof(dek));
	}
	PG_END_TRY();
	values[0] = CStringGetTextDatum(vault_current.id);
	values[1] = PointerGetDatum(wrapped);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

PG_FUNCTION_INFO_V1(unkey_vault_rewrap);

/* unkey._vault_rewrap(api_id, root_key_id, wrapped): the same data key, wrapped by the current root key */
Datum
unkey_vault_rewrap(PG_FUNCTION_ARGS)
{
	text	   *api_id = PG_GETARG_TEXT_PP(0);
	unsigned char dek[VAULT_DEK_BYTES];
	bytea	   *volatile result = NULL;

	PG_TRY();
	{
		VaultUnwrap(api_id, PG_GETARG_TEXT_PP(1), PG_GETARG_BYTEA_PP(2), dek);
		result = VaultSeal(dek, sizeof(dek), VaultAd("unkey data key", api_id, NULL), UnkeyVaultKey());
	}
	PG_FINALLY();
	{
		sodium_memzero(dek, sizeof(dek));
	}
	PG_END_TRY();
	PG_RETURN_BYTEA_P(result);
}

PG_FUNCTION_INFO_V1(unkey_vault_encrypt);

/*
 * unkey._vault_encrypt(api_id, root_key_id, wrapped, key_id, plaintext):
 * the ciphertext of a key, bound to its key id and API id.
 */
Datum
unkey_vault_encrypt(PG_FUNCTION_ARGS)
{
	text	   *api_id = PG_GETARG_TEXT_PP(0);
	text	   *plain = PG_GETARG_TEXT_PP(4);
	unsigned char dek[VAULT_DEK_BYTES];
	bytea	   *volatile result = NULL;

	PG_TRY();
	{
		VaultUnwrap(api_id, PG_GETARG_TEXT_PP(1), PG_GETARG_BYTEA_PP(2), dek);
		result = VaultSeal((unsigned char *) VARDATA_ANY(plain), VARSIZE_ANY_EXHDR(plain),
						   VaultAd("unkey key", PG_GETARG_TEXT_PP(3), api_id), dek);
	}
	PG_FINALLY();
	{
		sodium_memzero(dek, sizeof(dek));
	}
	PG_END_TRY();
	PG_RETURN_BYTEA_P(result);
}

PG_FUNCTION_INFO_V1(unkey_vault_decrypt);

/*
 * unkey._vault_decrypt(api_id, root_key_id, wrapped, key_id, key_hash,
 * ciphertext): the plaintext of a recoverable key.  It must authenticate
 * under the key's own id and API id, and hash to the key's own hash;
 * otherwise XX001, and nothing of it is returned.
 */
Datum
unkey_vault_decrypt(PG_FUNCTION_ARGS)
{
	text	   *api_id = PG_GETARG_TEXT_PP(0);
	text	   *key_id = PG_GETARG_TEXT_PP(3);
	bytea	   *key_hash = PG_GETARG_BYTEA_PP(4);
	bytea	   *sealed = PG_GETARG_BYTEA_PP(5);
	unsigned char dek[VAULT_DEK_BYTES];
	unsigned char hash[crypto_hash_sha256_BYTES];
	size_t		cap = VARSIZE_ANY_EXHDR(sealed);
	text	   *result = palloc(VARHDRSZ + cap);
	size_t		len = 0;
	volatile bool ok = false;

	PG_TRY();
	{
		VaultUnwrap(api_id, PG_GETARG_TEXT_PP(1), PG_GETARG_BYTEA_PP(2), dek);
		ok = VaultOpen(sealed, VaultAd("unkey key", key_id, api_id), dek, (unsigned char *) VARDATA(result), &len);
		if (ok)
		{
			crypto_hash_sha256(hash, (unsigned char *) VARDATA(result), len);
			ok = VARSIZE_ANY_EXHDR(key_hash) == sizeof(hash) &&
				sodium_memcmp(hash, VARDATA_ANY(key_hash), sizeof(hash)) == 0;
		}
	}
	PG_FINALLY();
	{
		sodium_memzero(dek, sizeof(dek));
	}
	PG_END_TRY();
	if (!ok)
	{
		sodium_memzero(VARDATA(result), cap);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("recoverable key %s does not decrypt", text_to_cstring(key_id)),
				 errhint("Its ciphertext was altered or copied from another key; the key itself still verifies.")));
	}
	SET_VARSIZE(result, VARHDRSZ + len);
	PG_RETURN_TEXT_P(result);
}

/*
 * Decryption is a privilege of its own: membership in unkey_decrypt of the
 * role that calls, which is current_user here because the reading entry
 * points are not SECURITY DEFINER (a PostgREST request's SET ROLE counts; a
 * SECURITY DEFINER function of another owner runs as that owner).
 */
static void
VaultCheckCaller(void)
{
	Oid			role = get_role_oid(VAULT_DECRYPT_ROLE, true);

	if (!OidIsValid(role) || !has_privs_of_role(GetUserId(), role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to decrypt keys"),
				 errdetail("Decrypting needs membership in role %s; role \"%s\" has none.",
						   VAULT_DECRYPT_ROLE, GetUserNameFromId(GetUserId(), false)),
				 errhint("A superuser can GRANT %s TO the role that shows keys again.", VAULT_DECRYPT_ROLE)));
}

/* What the reading entry points hand to UnkeyAsOwner */
typedef struct VaultCall
{
	FunctionCallInfo caller;
	FmgrInfo   *target;
	Datum		result;
	bool		isnull;
} VaultCall;

/* Call the private function with the caller's arguments (as the owner) */
static void
VaultCallTarget(void *arg)
{
	VaultCall  *call = arg;
	FunctionCallInfo in = call->caller;
	LOCAL_FCINFO(fcinfo, FUNC_MAX_ARGS);

	InitFunctionCallInfoData(*fcinfo, call->target, in->nargs, in->fncollation, NULL, NULL);
	for (int i = 0; i < in->nargs; i++)
		fcinfo->args[i] = in->args[i];
	call->result = FunctionCallInvoke(fcinfo);
	call->isnull = fcinfo->isnull;
}

PG_FUNCTION_INFO_V1(unkey_read_keys);

/*
 * unkey_get_key(key_id, decrypt) and unkey_list_keys(..., decrypt): check,
 * as the caller, that a caller who asks to decrypt may, then run the
 * private function of the same name and arguments (unkey._get_key,
 * unkey._list_keys) as the extension's owner.  decrypt is the last
 * argument.  Not SECURITY DEFINER, which would hide the caller.
 */
Datum
unkey_read_keys(PG_FUNCTION_ARGS)
{
	FmgrInfo   *target = fcinfo->flinfo->fn_extra;
	VaultCall	call;

	if (!PG_ARGISNULL(PG_NARGS() - 1) && PG_GETARG_BOOL(PG_NARGS() - 1))
		VaultCheckCaller();
	if (target == NULL)
	{
		/* unkey_get_key -> unkey._get_key, with the same argument types */
		char	   *name = get_func_name(fcinfo->flinfo->fn_oid);
		Oid		   *argtypes;
		int			nargs;
		Oid			fn;

		(void) get_func_signature(fcinfo->flinfo->fn_oid, &argtypes, &nargs);
		if (name == NULL || strncmp(name, "unkey_", 6) != 0 || nargs != PG_NARGS())
			elog(ERROR, "unkey_read_keys: unexpected function %s", name ? name : "?");
		fn = LookupFuncName(list_make2(makeString("unkey"), makeString(psprintf("_%s", name + 6))),
							nargs, argtypes, false);
		target = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FmgrInfo));
		fmgr_info_cxt(fn, target, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = target;
	}
	call.caller = fcinfo;
	call.target = target;
	UnkeyAsOwner(VaultCallTarget, &call);
	if (call.isnull)
		PG_RETURN_NULL();
	return call.result;
}

PG_FUNCTION_INFO_V1(unkey_vault_info);

/* unkey_vault_info(): whether the server has a root key, and its id (never the key) */
Datum
unkey_vault_info(PG_FUNCTION_ARGS)
{
	TupleDesc	desc = UnkeyResultDesc(fcinfo);
	Datum		values[2];
	bool		nulls[2] = {false, vault_current.key == NULL};

	values[0] = BoolGetDatum(vault_current.key != NULL);
	if (vault_current.key != NULL)
		values[1] = CStringGetTextDatum(vault_current.id);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* The settings; the keys are read at server start, so the library must be preloaded */
void
VaultInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomStringVariable(vault_current.setting,
							   gettext_noop("File holding the vault's 32-byte root key (hex or base64), outside the data directory."),
							   gettext_noop("Read once at server start; empty runs without the vault."),
							   &vault_current.file,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable(vault_previous.setting,
							   gettext_noop("File holding the vault's previous root key, during a rotation (see unkey_vault_rotate)."),
							   gettext_noop("Read once at server start; empty when no rotation is under way."),
							   &vault_previous.file,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	if (vault_current.file != NULL && vault_current.file[0] != '\0')
		VaultLoad(&vault_current);
	if (vault_previous.file != NULL && vault_previous.file[0] != '\0')
	{
		if (vault_current.key == NULL)
			VaultRefuse(&vault_previous, "is set but unkey.vault_key_file is not",
						"A rotation needs the new key in unkey.vault_key_file and the old one in unkey.vault_previous_key_file.");
		VaultLoad(&vault_previous);
		if (strcmp(vault_previous.id, vault_current.id) == 0)
			VaultRefuse(&vault_previous, "holds the same key as unkey.vault_key_file",
						"Put the new key in unkey.vault_key_file and the old one in unkey.vault_previous_key_file.");
	}
}
