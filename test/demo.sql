-- test/demo.sql: a tour of unkey, run by test/demo.sh
--
-- test/check.sh runs this demo too and compares what it prints with
-- test/demo.out, with ids, keys, hashes and dates masked.  So the output must
-- not depend on when the demo runs or on how fast the machine is: the events
-- are flushed before they are counted (step 13), and two waits below keep
-- every run on the same side of the clock boundaries that matter.
\pset footer off
\set QUIET on
CREATE EXTENSION unkey;

-- wait_if_ending(period, margin): periods are counted from the Unix epoch,
-- as rate-limit windows and UTC days are; if the current one ends within
-- margin, sleep until it has ended.  It prints nothing.
CREATE PROCEDURE pg_temp.wait_if_ending(period interval, margin interval) LANGUAGE plpgsql AS $$
DECLARE
    period_ms bigint := extract(epoch FROM period) * 1000;
    left_ms bigint := period_ms - floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint % period_ms;
BEGIN
    IF left_ms < extract(epoch FROM margin) * 1000 THEN
        PERFORM pg_sleep(left_ms / 1000.0 + 0.01);
    END IF;
END $$;

-- Step 15's daily series counts per UTC day: if the day ends within the next
-- 30 seconds, wait for it, so that every event of the demo falls on one day.
CALL pg_temp.wait_if_ending('1 day', '30 seconds');

\echo
\echo '1. Create an API'
SELECT unkey.unkey_create_api('payments', default_prefix => 'pay') AS api_id \gset
\echo '   api_id =' :api_id

\echo
\echo '2. Create a key: prefix sk_live, meta, external id acme and 3 credits'
SELECT key_id, key FROM unkey.unkey_create_key(:'api_id',
        prefix      => 'sk_live',
        name        => 'acme production',
        meta        => '{"plan": "pro", "environment": "live"}',
        external_id => 'acme',
        credits     => 3) \gset
\echo '   key_id =' :key_id
\echo '   key    =' :key '(shown once; only its SHA-256 is stored)'

\echo
\echo '3. Verify it until the credits run out (each call tagged with its number)'
-- The call takes the row's n (in its tag), so LATERAL evaluates it once for
-- each row of generate_series, in the series' order; step 8 cannot do this.
SELECT n AS call, v.valid, v.code, v.credits
  FROM generate_series(1, 4) n,
       LATERAL unkey.unkey_verify_key(:'key', tags => ARRAY['call-' || n]) v;

\echo
\echo '4. A check with cost 0 passes without spending, even at 0 credits'
SELECT valid, code, credits FROM unkey.unkey_verify_key(:'key', cost => 0);

\echo
\echo '5. An expired key, a disabled key and an unknown key'
SELECT key AS expired_key FROM unkey.unkey_create_key(:'api_id', name => 'expired',
        expires => now() - interval '1 hour') \gset
SELECT key AS disabled_key FROM unkey.unkey_create_key(:'api_id', name => 'disabled', enabled => false) \gset
SELECT 'expired' AS which, valid, code, key_id IS NOT NULL AS has_data FROM unkey.unkey_verify_key(:'expired_key')
UNION ALL
SELECT 'disabled', valid, code, key_id IS NOT NULL FROM unkey.unkey_verify_key(:'disabled_key')
UNION ALL
SELECT 'unknown', valid, code, key_id IS NOT NULL FROM unkey.unkey_verify_key('sk_live_doesnotexist');

\echo
\echo '6. The key''s data, as verification returns it'
\x on
SELECT key_id, api_id, name, external_id, identity_id, meta, enabled, credits, permissions, roles
  FROM unkey.unkey_verify_key(:'key', cost => 0);
\x off

\echo
\echo '7. What the database stores for the key of step 2: a hash and a short start, never the key'
SELECT start, prefix, encode(key_hash, 'base64') AS key_hash,
       encode(key_hash, 'base64') = unkey.unkey_hash_key(:'key') AS is_sha256_of_the_key
  FROM unkey.keys WHERE id = :'key_id';

\echo
\echo '8. Rate limits: 3 requests per 10 seconds for one customer, counted in shared memory'
-- A window starts at every multiple of 10 seconds since the Unix epoch, and
-- a request counts a fraction of the previous window's requests: were a
-- boundary to fall between the 3rd and the 4th request, the 4th would see
-- trunc(3 * (1 - a few ms / 10 s)) = 2 earlier requests and pass.  So if less
-- than 2 seconds of the current window are left, wait for the next one: steps
-- 8 to 10 take milliseconds, and step 10's minute windows start at 10-second
-- boundaries too.
CALL pg_temp.wait_if_ending('10 seconds', '2 seconds');
-- Four requests, made by a PL/pgSQL loop: the loop runs its INSERT once per
-- iteration, in order, and an INSERT ... SELECT from a function in FROM calls
-- the function once.  (A single SELECT over generate_series(1, 4) gives no
-- such promise: unkey_ratelimit takes nothing from the row number, so the
-- planner may call it just once and join its one result to all four rows.)
CREATE TEMP TABLE requests (request int, success boolean, remaining bigint, resets_in interval);
DO $$
BEGIN
    FOR n IN 1..4 LOOP
        INSERT INTO requests
        SELECT n, success, remaining, reset - clock_timestamp()
          FROM unkey.unkey_ratelimit('demo-api', 'customer-42', 3, '10 seconds');
    END LOOP;
END $$;
SELECT request, success, remaining, resets_in <= interval '10 seconds' AS resets_within_10s
  FROM requests ORDER BY request;
\echo '   The 4th request is refused, and a refused request is not counted.'

\echo
\echo '9. An override gives one customer more room; * patterns match many'
SELECT unkey.unkey_set_override('demo-api', 'vip-*', 100, '10 seconds') IS NOT NULL AS override_set;
SELECT "limit", remaining, override_id IS NOT NULL AS overridden
  FROM unkey.unkey_ratelimit('demo-api', 'vip-acme', 3, '10 seconds');

\echo
\echo '10. A key with a rate limit applied on every verification: 2 per minute'
SELECT key AS limited_key FROM unkey.unkey_create_key(:'api_id', name => 'limited',
        ratelimits => '[{"name": "requests", "limit": 2, "duration": 60000, "autoApply": true}]') \gset
SELECT n AS call, v.code, v.ratelimits -> 0 ->> 'remaining' AS remaining
  FROM generate_series(1, 3) n,
       LATERAL unkey.unkey_verify_key(:'limited_key', tags => ARRAY['call-' || n]) v;

\echo
\echo '11. Permissions: a role, a key that holds it, and permission queries in verification'
SELECT unkey.unkey_create_role('editor', permissions => '{documents.read, documents.write}') IS NOT NULL AS role_created;
SELECT key AS editor_key FROM unkey.unkey_create_key(:'api_id', name => 'editor',
        roles => '{editor}', permissions => '{billing.read}') \gset
SELECT q AS query, v.code, v.permissions
  FROM unnest(ARRAY['documents.read AND (documents.write OR admin)', 'billing.read AND admin']) q,
       LATERAL unkey.unkey_verify_key(:'editor_key', permissions => q) v;

\echo
\echo '12. Key lifecycle: reroll the key of step 2 (the old one stays valid for an hour),'
\echo '    top the new one up with 100 credits (it inherited the 0 left), read it back'
SELECT key_id AS new_key_id, key AS new_key FROM unkey.unkey_reroll_key(:'key_id', '1 hour') \gset
SELECT remaining AS credits_after_top_up FROM unkey.unkey_update_credits(:'new_key_id', 'increment', 100);
SELECT name, start, external_id, meta, credits FROM unkey.unkey_get_key(:'new_key_id');
\echo '    The audit log records both changes:'
\pset format unaligned
\pset tuples_only on
SELECT '    ' || event || ': ' || description
  FROM (SELECT * FROM unkey.audit_trail ORDER BY id DESC LIMIT 2) a ORDER BY id;
\pset tuples_only off
\pset format aligned

\echo
\echo '13. A burst of 200 verifications with the API id: 100 of a new key "busy" (120 credits),'
\echo '    50 of the new acme key of step 12 and 50 of an unknown key'
SELECT key_id AS busy_id, key AS busy_key FROM unkey.unkey_create_key(:'api_id', name => 'busy', credits => 120) \gset
SELECT b.key, v.code, count(*) AS verifications, min(v.credits) AS credits_left
  FROM (SELECT i, CASE i % 4 WHEN 0 THEN 'acme' WHEN 3 THEN 'unknown' ELSE 'busy' END AS key
          FROM generate_series(1, 200) i) b,
       LATERAL unkey.unkey_verify_key(CASE b.key WHEN 'acme' THEN :'new_key' WHEN 'busy' THEN :'busy_key'
                                      ELSE 'sk_live_no_such_key' END,
                                      api_id => :'api_id', tags => ARRAY['demo']) v
 GROUP BY b.key, v.code ORDER BY b.key;
\echo '    and one more of the busy key, in a transaction that is rolled back:'
BEGIN;
SELECT code, credits FROM unkey.unkey_verify_key(:'busy_key', api_id => :'api_id', tags => ARRAY['demo', 'rolled-back']);
ROLLBACK;
\echo '    The rollback gives its credit back, but its event stays: verification events are not'
\echo '    transactional, they record what was asked and answered.'
SELECT credits AS busy_credits_after_rollback FROM unkey.unkey_get_key(:'busy_id');
\echo '    Each verification and rate-limit check appends an event to a buffer in shared memory,'
\echo '    which a background worker writes to tables every 0.2 s.  unkey_flush_events() waits'
\echo '    until the buffer is written (it returns how many events it waited for, a number that'
\echo '    depends on how far the worker had got, so it is not shown here):'
SELECT unkey.unkey_flush_events() AS flushed \gset
SELECT buffered, appended, written FROM unkey.unkey_events_info() WHERE database = current_database();
\echo '    220 events: 215 verifications (steps 3 to 6: 4 + 1 + 3 + 1, step 10: 3, step 11: 2,'
\echo '    step 13: 201) and 5 rate-limit checks (step 8: 4, step 9: 1).'

\echo
\echo '14. Every verification was recorded, the rolled-back one too'
SELECT outcome, count(*) AS verifications, sum(spent_credits) AS credits_spent
  FROM unkey.verification_events GROUP BY outcome ORDER BY outcome;
\echo '    VALID 159: steps 3 (3), 4 (1), 6 (1), 10 (2), 11 (1) and 13 (150, and 1 rolled back).'
\echo '    NOT_FOUND 51: the unknown key of step 5 and the 50 of step 13.  The others, one each:'
\echo '    steps 3 (USAGE_EXCEEDED), 5 (DISABLED, EXPIRED), 10 (RATE_LIMITED), 11 (INSUFFICIENT_PERMISSIONS).'
\echo '    Credits spent 154: 3 in step 3, and in step 13 50 of the new acme key and 101 of busy,'
\echo '    the rolled-back one included.  A verification with cost 0 (steps 4 and 6) or of a key'
\echo '    without credits spends none.'

\echo
\echo '15. Analytics: usage per key and outcome (unkey.key_usage), and a daily series'
SELECT k.name || CASE k.id WHEN :'key_id' THEN ' (old key)' WHEN :'new_key_id' THEN ' (new key)' ELSE '' END AS key,
       u.valid, u.usage_exceeded, u.rate_limited, u.disabled, u.expired,
       u.insufficient_permissions, u.total, u.spent_credits
  FROM unkey.key_usage u JOIN unkey.keys k ON k.id = u.key_id
 WHERE u.api_id = :'api_id' ORDER BY u.total DESC, key;
\echo '    The old acme key has the calls of steps 3, 4 and 6 (spending its 3 credits), the new one'
\echo '    its 50 of step 13, busy its 100 and the rolled-back one; the others come from steps 5, 10'
\echo '    and 11.'
\echo '    An unknown key has no row here: 164 verifications, the 215 less the 51 NOT_FOUND.'
SELECT time::date AS day, valid, not_found, usage_exceeded, rate_limited, disabled, expired,
       insufficient_permissions, total
  FROM unkey.unkey_get_verifications(:'api_id', now() - interval '2 days', group_by => '{day}');
\echo '    Two empty days, then today: 214 verifications of this API.  The 215th, the unknown key'
\echo '    of step 5, was verified without an API id, so it belongs to no API.'

\echo
\echo '16. Recoverable keys: an API that keeps its keys encrypted, so that they can be shown again'
\echo '    (the root key is in a file outside the data directory, read at server start)'
SELECT unkey.unkey_create_api('support portal') AS vault_api \gset
SELECT unkey.unkey_set_api_recoverable(:'vault_api', true) AS opted_in \gset
SELECT name, recoverable FROM unkey.unkey_get_api(:'vault_api');
SELECT key_id AS rec_id, key AS rec_key
  FROM unkey.unkey_create_key(:'vault_api', prefix => 'sk_live', name => 'acme support', recoverable => true) \gset
\echo '   key =' :rec_key
\echo '    What is stored: the hash, as for every key, and a ciphertext (24-byte nonce, the key, a'
\echo '    16-byte tag) sealed under the API''s data key, itself stored only wrapped by the root key:'
SELECT octet_length(e.ciphertext) - octet_length(:'rec_key') AS ciphertext_minus_key_bytes,
       position(convert_to(:'rec_key', 'UTF8') IN e.ciphertext) = 0 AS key_not_in_it
  FROM unkey.encrypted_keys e JOIN unkey.keys k USING (key_hash) WHERE k.id = :'rec_id';
\echo '    A member of the role unkey_decrypt (here the superuser) shows it again; each decryption'
\echo '    is written to the audit log:'
SELECT name, plaintext = :'rec_key' AS shown_again FROM unkey.unkey_get_key(:'rec_id', decrypt => true);
SELECT event, description FROM unkey.audit_trail WHERE event = 'key.decrypt';
