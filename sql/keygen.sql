-- keygen: key format, prefix rules, byte lengths, hashing and uniqueness

-- a base58 (Bitcoin alphabet) decoder written independently of the C encoder:
-- each leading '1' is a zero byte, the rest is a base-58 number
CREATE FUNCTION regress.base58_decode(s text) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
	alphabet text := '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
	n numeric := 0;
	zeros int := length(s) - length(ltrim(s, '1'));
	out bytea := '';
BEGIN
	FOR i IN 1 .. length(s) LOOP
		IF strpos(alphabet, substr(s, i, 1)) = 0 THEN
			RAISE EXCEPTION 'not base58: %', substr(s, i, 1);
		END IF;
		n := n * 58 + strpos(alphabet, substr(s, i, 1)) - 1;
	END LOOP;
	WHILE n > 0 LOOP
		out := set_byte('\x00'::bytea, 0, (n % 256)::int) || out;
		n := div(n, 256);
	END LOOP;
	RETURN decode(repeat('00', zeros), 'hex') || out;
END
$$;
-- the decoder itself, on known vectors
SELECT encode(regress.base58_decode('2g'), 'hex') AS a,        -- 'a'
       encode(regress.base58_decode('11'), 'hex') AS two_zeros,
       encode(regress.base58_decode('StV1DL6CwTryKyV'), 'hex') AS hello_world;

SELECT unkey.unkey_create_api('keygen') AS api \gset
SELECT unkey.unkey_create_api('keygen-default', default_prefix => 'dflt', default_byte_length => 32) AS api_default \gset

-- 16 bytes (the default) and 255 bytes: the random part decodes back to exactly
-- that many bytes, uses only the base58 alphabet, and follows prefix || '_'
CREATE TEMP TABLE made AS
SELECT b AS byte_length, c.*
  FROM generate_series(1, 50) i, (VALUES (16), (255)) v(b),
       LATERAL unkey.unkey_create_key(:'api', prefix => 'sk_live', byte_length => b) c;
SELECT byte_length, count(*) AS keys,
       bool_and(key LIKE 'sk\_live\_%') AS prefixed,
       bool_and(substr(key, 9) ~ '^[1-9A-HJ-NP-Za-km-z]+$') AS base58_only,
       bool_and(octet_length(regress.base58_decode(substr(key, 9))) = byte_length) AS decodes_to_length,
       min(length(key) - 8) >= CASE byte_length WHEN 16 THEN 20 ELSE 340 END AS min_len_ok,
       max(length(key) - 8) <= CASE byte_length WHEN 16 THEN 22 ELSE 349 END AS max_len_ok
  FROM made GROUP BY byte_length ORDER BY byte_length;

-- start is the prefix, the underscore and 4 characters; ids are key_ + 22ish
SELECT bool_and(k.start = left(m.key, 12)) AS start_ok,
       bool_and(k.prefix = 'sk_live') AS prefix_stored,
       bool_and(m.key_id ~ '^key_[1-9A-HJ-NP-Za-km-z]{20,22}$') AS id_format
  FROM made m JOIN unkey.keys k ON k.id = m.key_id;

-- no prefix: no underscore, start is 4 characters
SELECT * FROM unkey.unkey_create_key(:'api') \gset noprefix_
SELECT :'noprefix_key' ~ '^[1-9A-HJ-NP-Za-km-z]{20,22}$' AS bare_base58,
       (SELECT start FROM unkey.keys WHERE id = :'noprefix_key_id') = left(:'noprefix_key', 4) AS start_4,
       (SELECT prefix IS NULL FROM unkey.keys WHERE id = :'noprefix_key_id') AS no_prefix;

-- the API's defaults apply when prefix and byte_length are omitted; given ones win
SELECT * FROM unkey.unkey_create_key(:'api_default') \gset d_
SELECT * FROM unkey.unkey_create_key(:'api_default', prefix => 'own', byte_length => 16) \gset o_
SELECT :'d_key' LIKE 'dflt\_%' AS default_prefix,
       octet_length(regress.base58_decode(substr(:'d_key', 6))) AS default_bytes,
       :'o_key' LIKE 'own\_%' AS own_prefix,
       octet_length(regress.base58_decode(substr(:'o_key', 5))) AS own_bytes;

-- prefix rules: 1..16 of [A-Za-z0-9_]
SELECT * FROM unkey.unkey_create_key(:'api', prefix => 'abcdefghijklmnop') \gset p16_
SELECT :'p16_key' LIKE 'abcdefghijklmnop\_%' AS sixteen_ok;
SELECT p, regress.err(format('SELECT unkey.unkey_create_key(%L, prefix => %L)', :'api', p))
  FROM unnest(ARRAY['', 'abcdefghijklmnopq', 'bad-prefix', 'sk live', 'ключ', 'a.b']) p;
SELECT b, regress.err(format('SELECT unkey.unkey_create_key(%L, byte_length => %s)', :'api', b))
  FROM unnest(ARRAY[15, 256, 0, -1]) b;

-- the hash is SHA-256 of the whole key, base64 with padding, as Unkey stores it
SELECT unkey.unkey_hash_key('abc') AS known_vector,
       unkey.unkey_hash_key('') AS empty,
       unkey.unkey_hash_key(NULL) IS NULL AS null_in_null_out;
SELECT count(*) AS keys,
       bool_and(unkey.unkey_hash_key(key) = encode(digest(key, 'sha256'), 'base64')) AS matches_pgcrypto,
       bool_and(k.key_hash = digest(key, 'sha256')) AS stored_hash_matches,
       bool_and(length(unkey.unkey_hash_key(key)) = 44) AS always_44
  FROM made m JOIN unkey.keys k ON k.id = m.key_id;
-- the prefix is part of what is hashed
SELECT unkey.unkey_hash_key('sk_abc') <> unkey.unkey_hash_key('abc') AS prefix_hashed;

-- 10,000 keys and their ids, no duplicate
SELECT count(DISTINCT k) AS distinct_keys, count(DISTINCT i) AS distinct_ids
  FROM (SELECT unkey._generate_key(NULL, 16) k, unkey._new_id('key') i
          FROM generate_series(1, 10000)) s;
