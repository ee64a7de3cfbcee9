/*
 * credits.sql: the refill rule (C: src/credits.c), credit operations and
 * the bulk refill
 */

CREATE FUNCTION unkey._refill_due(last_refill_at timestamptz, refill_day integer, now timestamptz) RETURNS boolean
	AS 'MODULE_PATHNAME', 'unkey_refill_due' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._refill_due(timestamptz, integer, timestamptz) IS 'private: has a refill boundary passed since last_refill_at (refill_day NULL = daily)';

CREATE FUNCTION unkey._credits_now(remaining bigint, refill_amount bigint, refill_day integer,
								   last_refill_at timestamptz, now timestamptz) RETURNS bigint
	AS 'MODULE_PATHNAME', 'unkey_credits_now' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._credits_now(bigint, bigint, integer, timestamptz, timestamptz) IS 'private: remaining credits after any refill that is due';

CREATE TYPE unkey.key_credits AS (
	remaining			bigint,
	refill_interval		text,
	refill_amount		bigint,
	refill_day			integer
);

CREATE FUNCTION unkey.unkey_refill_keys()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ts timestamptz := unkey.now();
	refilled bigint;
BEGIN
	-- the same rule verification applies lazily, applied to every due key
	UPDATE unkey.keys k
	   SET remaining = unkey._credits_now(k.remaining, k.refill_amount, k.refill_day, k.last_refill_at, ts),
		   last_refill_at = ts
	 WHERE k.refill_amount IS NOT NULL AND k.deleted_at IS NULL
	   AND unkey._refill_due(k.last_refill_at, k.refill_day, ts);
	GET DIAGNOSTICS refilled = ROW_COUNT;
	RETURN refilled;
END
$$;
COMMENT ON FUNCTION unkey.unkey_refill_keys() IS 'apply every due refill now; returns how many keys passed a refill boundary';

CREATE FUNCTION unkey.unkey_update_credits(key_id text, operation text, value bigint DEFAULT NULL)
RETURNS unkey.key_credits
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ts timestamptz := unkey.now();
	k unkey.keys;
	balance bigint;
BEGIN
	IF operation IS NULL OR operation NOT IN ('set', 'increment', 'decrement') THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'operation must be set, increment or decrement'::text,
							 'Pass ''set'', ''increment'' or ''decrement''.'::text);
	END IF;
	IF value < 0 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'value must not be negative'::text,
							 'Pass 0 or more; use ''decrement'' to lower the balance.'::text);
	END IF;
	IF operation <> 'set' AND value IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('value must be given to %s credits', operation),
							 'Pass the number of credits to add or take.'::text);
	END IF;
	-- the row lock orders this against concurrent verifications spending credits
	k := unkey._lock_key(key_id);
	IF operation <> 'set' AND k.remaining IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('cannot %s the credits of a key with unlimited credits', operation),
							 'Use ''set'' to give the key a balance first.'::text);
	END IF;
	-- any refill that is due happens first, as the next verification would apply it
	balance := unkey._credits_now(k.remaining, k.refill_amount, k.refill_day, k.last_refill_at, ts);
	IF operation = 'increment' AND balance::numeric + value > 9223372036854775807 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'credits would exceed the bigint range'::text,
							 'Set a smaller balance, or make the key unlimited with ''set'' and a NULL value.'::text);
	END IF;
	k := unkey._apply_key_changes(k, jsonb_build_object('credits',
		 CASE operation
			 WHEN 'set' THEN value
			 WHEN 'increment' THEN balance + value
			 ELSE greatest(balance - value, 0)
		 END), ts);
	PERFORM unkey._store_key(k);
	PERFORM unkey._audit('key.update'::text,
						 format('Updated key %s, set remaining to %s', k.id, coalesce(k.remaining::text, 'unlimited')),
						 ARRAY['key', k.id]);
	RETURN ROW(k.remaining, k.refill_interval, k.refill_amount, k.refill_day)::unkey.key_credits;
END
$$;
COMMENT ON FUNCTION unkey.unkey_update_credits(text, text, bigint) IS 'set, increment or decrement (clamped at 0) a key''s credits; set NULL makes it unlimited';
