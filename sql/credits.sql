-- credits: spending with cost, cost 0, exhaustion, unlimited keys, rollback
SELECT unkey.unkey_create_api('credits') AS api \gset
SELECT key AS k10 FROM unkey.unkey_create_key(:'api', credits => 10) \gset
SELECT key AS unlimited FROM unkey.unkey_create_key(:'api') \gset

-- cost is spent exactly; a cost above the balance is refused and spends nothing,
-- reporting the real balance; cost 0 always passes
SELECT c AS cost, v.valid, v.code, v.credits
  FROM unnest(ARRAY[1, 3, 7, 6, 0, 5, 1, 0]) WITH ORDINALITY AS t(c, n),
	   LATERAL unkey.unkey_verify_key(:'k10', cost => c, tags => ARRAY[n::text]) v ORDER BY n;
SELECT remaining FROM unkey.keys WHERE key_hash = unkey._key_hash(:'k10');

-- at 0 credits: cost 0 still passes, any cost is USAGE_EXCEEDED; the key stays enabled
SELECT code, credits, enabled FROM unkey.unkey_verify_key(:'k10', cost => 0);
SELECT code, credits, enabled FROM unkey.unkey_verify_key(:'k10');

-- spent_credits is the cost only when it was spent
SELECT FROM unkey.unkey_flush_events();
SELECT tags[1] AS call, outcome, spent_credits FROM unkey.verification_events
 WHERE key_hash = unkey._key_hash(:'k10') AND tags IS NOT NULL ORDER BY tags[1]::int;

-- unlimited keys: nothing to spend, credits is NULL, any cost passes
SELECT code, credits FROM unkey.unkey_verify_key(:'unlimited', cost => 1000000000000);
SELECT remaining IS NULL AS still_unlimited FROM unkey.keys WHERE key_hash = unkey._key_hash(:'unlimited');

-- credits are transactional: a rolled-back verification gives its credits back
SELECT key AS k3 FROM unkey.unkey_create_key(:'api', credits => 3) \gset
BEGIN;
SELECT code, credits FROM unkey.unkey_verify_key(:'k3', cost => 2);
ROLLBACK;
SELECT remaining AS after_rollback FROM unkey.keys WHERE key_hash = unkey._key_hash(:'k3');
-- and a committed one keeps them spent; a savepoint rollback also returns them
BEGIN;
SELECT code, credits FROM unkey.unkey_verify_key(:'k3', cost => 2);
SAVEPOINT s;
SELECT code, credits FROM unkey.unkey_verify_key(:'k3', cost => 1);
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT remaining AS after_commit FROM unkey.keys WHERE key_hash = unkey._key_hash(:'k3');

-- the largest balance and cost
SELECT key AS big FROM unkey.unkey_create_key(:'api', credits => 9223372036854775807) \gset
SELECT code, credits FROM unkey.unkey_verify_key(:'big', cost => 9223372036854775807);
SELECT code, credits FROM unkey.unkey_verify_key(:'big', cost => 1);

-- failures spend nothing: a disabled key with credits keeps them
SELECT key AS off FROM unkey.unkey_create_key(:'api', credits => 2, enabled => false) \gset
SELECT code, credits FROM unkey.unkey_verify_key(:'off');
SELECT remaining FROM unkey.keys WHERE key_hash = unkey._key_hash(:'off');
