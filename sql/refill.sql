-- refill: lazy daily and monthly refill at 00:00 UTC, and the batch function
SET timezone = 'UTC';
SELECT unkey.unkey_create_api('refill') AS api \gset

-- daily: created mid-day, spent, no refill before midnight, refilled at 00:00:00
SET unkey.test_now = '2026-01-15 10:00:00+00';
SELECT key AS daily FROM unkey.unkey_create_key(:'api', credits => 3, refill_interval => 'daily', refill_amount => 3) \gset
SELECT code, credits FROM unkey.unkey_verify_key(:'daily', cost => 3);
SET unkey.test_now = '2026-01-15 23:59:59.999999+00';
SELECT code, credits FROM unkey.unkey_verify_key(:'daily');
SET unkey.test_now = '2026-01-16 00:00:00+00';
-- a check (cost 0) shows the refilled balance without writing it
SELECT code, credits FROM unkey.unkey_verify_key(:'daily', cost => 0);
SELECT remaining, last_refill_at FROM unkey.keys WHERE key_hash = unkey._key_hash(:'daily');
-- spending writes the refill and the spend together
SELECT code, credits FROM unkey.unkey_verify_key(:'daily');
SELECT remaining, last_refill_at FROM unkey.keys WHERE key_hash = unkey._key_hash(:'daily');
-- only one refill per day, however many verifications
SELECT code, credits FROM unkey.unkey_verify_key(:'daily', cost => 2);
SELECT code, credits FROM unkey.unkey_verify_key(:'daily');
-- several days later: one refill, to the amount (set, not added)
SET unkey.test_now = '2026-01-20 08:00:00+00';
SELECT code, credits FROM unkey.unkey_verify_key(:'daily', cost => 0);

-- a key above its refill amount is not reduced
SELECT key AS rich FROM unkey.unkey_create_key(:'api', credits => 50, refill_interval => 'daily', refill_amount => 10) \gset
SET unkey.test_now = '2026-01-22 00:00:00+00';
SELECT code, credits FROM unkey.unkey_verify_key(:'rich');

-- a boundary passed while the key was full still counts: spending after it
-- waits for the next boundary (exactly what Unkey's midnight job does)
SELECT key AS full_key FROM unkey.unkey_create_key(:'api', credits => 5, refill_interval => 'daily', refill_amount => 5) \gset
SET unkey.test_now = '2026-01-23 09:00:00+00';
SELECT code, credits FROM unkey.unkey_verify_key(:'full_key', cost => 4);
SELECT code, credits FROM unkey.unkey_verify_key(:'full_key', cost => 0);

-- monthly on day 31: refills on the 31st, or the month's last day when shorter
SET unkey.test_now = '2026-01-10 12:00:00+00';
SELECT key AS m31 FROM unkey.unkey_create_key(:'api', credits => 10, refill_interval => 'monthly', refill_amount => 10, refill_day => 31) \gset
SELECT code, credits FROM unkey.unkey_verify_key(:'m31', cost => 10);
SET unkey.test_now = '2026-01-30 23:59:59+00';
SELECT code, credits FROM unkey.unkey_verify_key(:'m31', cost => 0);
SET unkey.test_now = '2026-01-31 00:00:00+00';
SELECT code, credits FROM unkey.unkey_verify_key(:'m31', cost => 0);
SELECT code, credits FROM unkey.unkey_verify_key(:'m31', cost => 10);
SET unkey.test_now = '2026-02-27 23:59:59+00';
SELECT code, credits FROM unkey.unkey_verify_key(:'m31');
SET unkey.test_now = '2026-02-28 00:00:00+00';
SELECT code, credits FROM unkey.unkey_verify_key(:'m31', cost => 10);
SET unkey.test_now = '2026-03-30 12:00:00+00';
SELECT code, credits FROM unkey.unkey_verify_key(:'m31');
SET unkey.test_now = '2026-03-31 00:00:00+00';
SELECT code, credits FROM unkey.unkey_verify_key(:'m31', cost => 10);
SET unkey.test_now = '2026-04-30 00:00:00+00';
SELECT code, credits FROM unkey.unkey_verify_key(:'m31', cost => 0);

-- a leap year: day 30 clamps to February 29th
SET unkey.test_now = '2028-02-01 00:00:00+00';
SELECT key AS leap FROM unkey.unkey_create_key(:'api', credits => 1, refill_interval => 'monthly', refill_amount => 1, refill_day => 30) \gset
SELECT code FROM unkey.unkey_verify_key(:'leap');
SET unkey.test_now = '2028-02-28 23:00:00+00';
SELECT code FROM unkey.unkey_verify_key(:'leap');
SET unkey.test_now = '2028-02-29 00:00:00+00';
SELECT code FROM unkey.unkey_verify_key(:'leap');

-- across a year: day 15, from December to January
SET unkey.test_now = '2026-12-20 00:00:00+00';
SELECT key AS yearly FROM unkey.unkey_create_key(:'api', credits => 1, refill_interval => 'monthly', refill_amount => 1, refill_day => 15) \gset
SELECT code FROM unkey.unkey_verify_key(:'yearly');
SET unkey.test_now = '2027-01-14 23:59:59+00';
SELECT code FROM unkey.unkey_verify_key(:'yearly');
SET unkey.test_now = '2027-01-15 00:00:00+00';
SELECT code FROM unkey.unkey_verify_key(:'yearly');

-- the boundary rule itself, for a few instants (refill_day NULL = daily)
SELECT last, day, now, unkey._refill_due(last::timestamptz, day, now::timestamptz) AS due
  FROM (VALUES ('2026-01-31 00:00:00+00', 31, '2026-02-27 00:00:00+00'),
			   ('2026-01-30 00:00:00+00', 31, '2026-02-27 00:00:00+00'),
			   ('2026-02-28 00:00:00+00', 31, '2026-03-30 23:59:59+00'),
			   ('2026-02-28 00:00:00+00', 31, '2026-03-31 00:00:00+00'),
			   ('2026-03-01 00:00:00+00', 1, '2026-03-01 00:00:00+00'),
			   ('2026-02-28 23:59:59+00', 1, '2026-03-01 00:00:00+00'),
			   ('2026-03-05 00:00:00+00', NULL, '2026-03-05 23:59:59+00'),
			   ('2026-03-04 23:59:59+00', NULL, '2026-03-05 00:00:00+00'),
			   (NULL, NULL, '2026-03-05 00:00:00+00')) v(last, day, now);

-- the batch applies the same rule to every due key and returns how many passed a boundary
SET unkey.test_now = '2027-06-01 00:00:00+00';
SELECT key AS batch1 FROM unkey.unkey_create_key(:'api', credits => 7, refill_interval => 'daily', refill_amount => 7) \gset
SELECT code, credits FROM unkey.unkey_verify_key(:'batch1', cost => 7);
UPDATE unkey.keys SET deleted_at = now() WHERE refill_amount IS NOT NULL AND key_hash <> unkey._key_hash(:'batch1');
SELECT unkey.unkey_refill_keys() AS refilled_same_day;
SET unkey.test_now = '2027-06-02 00:00:00+00';
SELECT unkey.unkey_refill_keys() AS refilled_next_day;
SELECT remaining, last_refill_at FROM unkey.keys WHERE key_hash = unkey._key_hash(:'batch1');
SELECT unkey.unkey_refill_keys() AS refilled_again;
SELECT code, credits FROM unkey.unkey_verify_key(:'batch1', cost => 0);
RESET unkey.test_now;
