-- test/demo.sql: a tour of unkey, run by test/demo.sh
\pset footer off
\set QUIET on
CREATE EXTENSION unkey;

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
SELECT n AS call, v.valid, v.code, v.credits
  FROM generate_series(1, 4) n,
       LATERAL unkey.unkey_verify_key(:'key', tags => ARRAY['call-' || n]) v;

\echo
\echo '4. A check with cost 0 passes without spending, even at 0 credits'
SELECT valid, code, credits FROM unkey.unkey_verify_key(:'key', cost => 0);

\echo
\echo '5. An expired key, a disabled key and an unknown key'
SELECT key AS expired_key FROM unkey.unkey_create_key(:'api_id', expires => now() - interval '1 hour') \gset
SELECT key AS disabled_key FROM unkey.unkey_create_key(:'api_id', enabled => false) \gset
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
\echo '7. What the database stores: a hash and a short start, never the key'
SELECT id, start, prefix, unkey.unkey_hash_key(:'key') AS unkey_hash,
       encode(key_hash, 'base64') = unkey.unkey_hash_key(:'key') AS hash_matches
  FROM unkey.keys WHERE id = :'key_id';

\echo
\echo '8. Rate limits: 3 requests per 10 seconds for one customer, counted in shared memory'
-- (the WHERE makes the call depend on n, so PostgreSQL runs it once per row)
SELECT n AS request, r.success, r.remaining, r.reset - now() < interval '10 seconds' AS resets_within_10s
  FROM generate_series(1, 4) n,
       LATERAL (SELECT * FROM unkey.unkey_ratelimit('demo-api', 'customer-42', 3, '10 seconds') WHERE n > 0) r;

\echo
\echo '9. An override gives one customer more room; * patterns match many'
SELECT unkey.unkey_set_override('demo-api', 'vip-*', 100, '10 seconds') IS NOT NULL AS override_set;
SELECT "limit", remaining, override_id IS NOT NULL AS overridden
  FROM unkey.unkey_ratelimit('demo-api', 'vip-acme', 3, '10 seconds');

\echo
\echo '10. A key with a rate limit applied on every verification: 2 per minute'
SELECT key AS limited_key FROM unkey.unkey_create_key(:'api_id',
        ratelimits => '[{"name": "requests", "limit": 2, "duration": 60000, "autoApply": true}]') \gset
SELECT n AS call, v.code, v.ratelimits -> 0 ->> 'remaining' AS remaining
  FROM generate_series(1, 3) n,
       LATERAL unkey.unkey_verify_key(:'limited_key', tags => ARRAY['call-' || n]) v;

\echo
\echo '11. Permissions: a role, a key that holds it, and permission queries in verification'
SELECT unkey.unkey_create_role('editor', permissions => '{documents.read, documents.write}') IS NOT NULL AS role_created;
SELECT key AS editor_key FROM unkey.unkey_create_key(:'api_id', roles => '{editor}', permissions => '{billing.read}') \gset
SELECT q AS query, v.code, v.permissions
  FROM unnest(ARRAY['documents.read AND (documents.write OR admin)', 'billing.read AND admin']) q,
       LATERAL unkey.unkey_verify_key(:'editor_key', permissions => q) v;

\echo
\echo '12. Key lifecycle: reroll the key (the old one stays valid for an hour), top it up, read it back'
SELECT key_id AS new_key_id, key AS new_key FROM unkey.unkey_reroll_key(:'key_id', '1 hour') \gset
SELECT remaining AS credits_after_top_up FROM unkey.unkey_update_credits(:'new_key_id', 'increment', 100);
SELECT name, start, external_id, meta, credits FROM unkey.unkey_get_key(:'new_key_id');
SELECT event, description FROM unkey.audit_trail ORDER BY id DESC LIMIT 3;

\echo
\echo '13. A burst of 200 verifications over three keys, even one rolled back; events go to a buffer'
SELECT key_id AS busy_id, key AS busy_key FROM unkey.unkey_create_key(:'api_id', name => 'busy', credits => 120) \gset
SELECT count(*) AS verifications
  FROM generate_series(1, 200) i,
       LATERAL unkey.unkey_verify_key(CASE i % 4 WHEN 0 THEN :'new_key' WHEN 3 THEN 'sk_live_no_such_key'
                                      ELSE :'busy_key' END, api_id => :'api_id', tags => ARRAY['demo']) v;
BEGIN;
SELECT code FROM unkey.unkey_verify_key(:'busy_key', api_id => :'api_id', tags => ARRAY['demo', 'rolled-back']);
ROLLBACK;
SELECT database, buffered, written, inline_writes FROM unkey.unkey_events_info() WHERE database = current_database();
SELECT unkey.unkey_flush_events() AS written_now;

\echo
\echo '14. Every verification was recorded (the rolled-back one too)'
SELECT outcome, count(*) AS verifications, sum(spent_credits) AS credits_spent
  FROM unkey.verification_events GROUP BY outcome ORDER BY outcome;

\echo
\echo '15. Analytics: usage per key and outcome (unkey.key_usage), and a daily series'
SELECT coalesce(k.name, k.start) AS key, u.valid, u.usage_exceeded, u.rate_limited, u.disabled, u.expired,
       u.insufficient_permissions, u.total, u.spent_credits
  FROM unkey.key_usage u JOIN unkey.keys k ON k.id = u.key_id
 WHERE u.api_id = :'api_id' ORDER BY u.total DESC, key;
SELECT time::date AS day, valid, not_found, usage_exceeded, rate_limited, total
  FROM unkey.unkey_get_verifications(:'api_id', now() - interval '2 days', group_by => '{day}');
