/*-------------------------------------------------------------------------
 *
 * keys.c
 *	  Key and id generation, and key hashing, with libsodium.
 *
 * A key is prefix || '_' || base58(random bytes), with Bitcoin's base58
 * alphabet, exactly as Unkey builds it.  The stored hash is SHA-256 of the
 * whole key string; it is shown as standard base64 with padding, which is
 * how Unkey stores it, so keys can move between the two by hash.  Random
 * bytes are wiped as soon as they are encoded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "keys.h"

static const char base58_alphabet[] =
"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/* The random part of a key, in bytes, as Unkey bounds it (README, Keys) */
#define UNKEY_MIN_BYTE_LENGTH 16
#define UNKEY_MAX_BYTE_LENGTH 255

/* Random bytes behind every generated id: 128 bits, unique by construction */
#define UNKEY_ID_BYTES 16

/* Big-integer base58, each leading zero byte becoming '1' */
static void
Base58Append(StringInfo out, const unsigned char *in, size_t len)
{
	/* log(256)/log(58) < 1.37, so 138% of the input length is enough */
	size_t		size = len * 138 / 100 + 1;
	unsigned char *digits = palloc0(size);
	size_t		zeros = 0;
	size_t		used = 0;

	while (zeros < len && in[zeros] == 0)
		zeros++;

	for (size_t i = zeros; i < len; i++)
	{
		int			carry = in[i];
		size_t		j;

		/* digits holds the number in base 58, least significant first */
		for (j = 0; j < used || carry != 0; j++)
		{
			carry += 256 * (j < used ? digits[j] : 0);
			digits[j] = carry % 58;
			carry /= 58;
		}
		used = j;
	}

	for (size_t i = 0; i < zeros; i++)
		appendStringInfoChar(out, '1');
	while (used > 0)
		appendStringInfoChar(out, base58_alphabet[digits[--used]]);

	sodium_memzero(digits, size);
	pfree(digits);
}

/* Append base58 of n fresh random bytes, wiping the bytes afterwards */
static void
AppendRandomBase58(StringInfo out, int nbytes)
{
	unsigned char buf[UNKEY_MAX_BYTE_LENGTH];

	Assert(nbytes > 0 && nbytes <= UNKEY_MAX_BYTE_LENGTH);
	randombytes_buf(buf, nbytes);
	Base58Append(out, buf, nbytes);
	sodium_memzero(buf, sizeof(buf));
}

/* SHA-256 of a key; the one definition of the stored hash */
void
UnkeyHashKey(const char *key, size_t len, unsigned char *out)
{
	crypto_hash_sha256(out, (const unsigned char *) key, len);
}

/* prefix || '_' || base58(nbytes random bytes); no prefix means no underscore */
static text *
PrefixedRandom(text *prefix, int nbytes)
{
	StringInfoData out;
	text	   *result;

	initStringInfo(&out);
	if (prefix != NULL)
	{
		appendBinaryStringInfo(&out, VARDATA_ANY(prefix), VARSIZE_ANY_EXHDR(prefix));
		appendStringInfoChar(&out, '_');
	}
	AppendRandomBase58(&out, nbytes);
	result = cstring_to_text_with_len(out.data, out.len);
	sodium_memzero(out.data, out.len);
	pfree(out.data);
	return result;
}

PG_FUNCTION_INFO_V1(unkey_generate_key);

/*
 * unkey._generate_key(prefix text, byte_length int) returns text
 *
 * The caller (unkey_create_key) has validated both arguments; the length is
 * checked again here because a wrong one would weaken every key.
 */
Datum
unkey_generate_key(PG_FUNCTION_ARGS)
{
	int32		nbytes = PG_ARGISNULL(1) ? UNKEY_MIN_BYTE_LENGTH : PG_GETARG_INT32(1);

	if (nbytes < UNKEY_MIN_BYTE_LENGTH || nbytes > UNKEY_MAX_BYTE_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("byte_length must be between %d and %d",
						UNKEY_MIN_BYTE_LENGTH, UNKEY_MAX_BYTE_LENGTH),
				 errhint("Pass a byte_length between %d and %d.",
						 UNKEY_MIN_BYTE_LENGTH, UNKEY_MAX_BYTE_LENGTH)));

	PG_RETURN_TEXT_P(PrefixedRandom(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0), nbytes));
}

/* An opaque Unkey-style id such as req_…, for C callers */
char *
UnkeyNewId(const char *prefix)
{
	return text_to_cstring(PrefixedRandom(cstring_to_text(prefix), UNKEY_ID_BYTES));
}

PG_FUNCTION_INFO_V1(unkey_new_id);

/* unkey._new_id(prefix text): an opaque Unkey-style id such as key_… */
Datum
unkey_new_id(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(PrefixedRandom(PG_GETARG_TEXT_PP(0), UNKEY_ID_BYTES));
}

PG_FUNCTION_INFO_V1(unkey_key_hash);

/* unkey._key_hash(key text) returns bytea: the 32 bytes that are stored */
Datum
unkey_key_hash(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	bytea	   *result = palloc(VARHDRSZ + UNKEY_HASH_LEN);

	SET_VARSIZE(result, VARHDRSZ + UNKEY_HASH_LEN);
	UnkeyHashKey(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
				 (unsigned char *) VARDATA(result));
	PG_RETURN_BYTEA_P(result);
}

PG_FUNCTION_INFO_V1(unkey_hash_key);

/* unkey_hash_key(key text) returns text: base64 of SHA-256, as Unkey shows it */
Datum
unkey_hash_key(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	unsigned char digest[UNKEY_HASH_LEN];
	char		b64[sodium_base64_ENCODED_LEN(UNKEY_HASH_LEN, sodium_base64_VARIANT_ORIGINAL)];

	UnkeyHashKey(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), digest);
	sodium_bin2base64(b64, sizeof(b64), digest, UNKEY_HASH_LEN,
					  sodium_base64_VARIANT_ORIGINAL);
	PG_RETURN_TEXT_P(cstring_to_text(b64));
}
