/*
 * events.sql: the event tables the event writer fills (C: src/events.c),
 * rollups, retention and analytics
 */

-- Events are partitioned by day (UTC); the event writer creates the
-- partitions as events arrive, and the retention drops whole partitions.
CREATE TABLE unkey.verification_events (
	time				timestamptz NOT NULL,
	request_id			text,
	key_hash			bytea NOT NULL CHECK (octet_length(key_hash) = 32),
	api_id				text,
	key_id				text,
	identity_id			text,
	external_id			text,
	outcome				text NOT NULL,
	tags				text[],
	spent_credits		bigint NOT NULL DEFAULT 0,
	latency				double precision
) PARTITION BY RANGE (time);
COMMENT ON TABLE unkey.verification_events IS 'per-key: one row per verification, partitioned by day; NOT_FOUND rows carry the hash of the presented key';

CREATE TABLE unkey.ratelimit_events (
	time				timestamptz NOT NULL,
	request_id			text,
	namespace_id		text NOT NULL,
	namespace			text NOT NULL,
	identifier			text NOT NULL,
	passed				boolean NOT NULL,
	"limit"				bigint NOT NULL,
	remaining			bigint NOT NULL,
	reset				timestamptz NOT NULL,
	cost				bigint NOT NULL,
	override_id			text,
	latency				double precision
) PARTITION BY RANGE (time);
COMMENT ON TABLE unkey.ratelimit_events IS 'per-identifier: one row per unkey_ratelimit check, partitioned by day';

-- Verification counts per hour, day and month (UTC): the event writer adds
-- each batch to the hours; a day, and a month, is materialised from the finer
-- grain once it has closed (unkey._materialize_rollups), and a query adds the
-- finer rows of the buckets still open (unkey._rollups).  One narrow row per
-- bucket, key, identity and API, with the outcomes as columns and the
-- latencies as a histogram (see src/analytics.c): the shape of the common
-- answers (per day and key, per key).  Verifications with tags are counted a
-- second time per tag set, in verification_tag_rollups; those without tags
-- are the difference (unkey._tag_sets).
CREATE TABLE unkey.verification_rollups (
	granularity			text NOT NULL CHECK (granularity IN ('hour', 'day', 'month')),
	bucket				timestamptz NOT NULL,
	key_hash			bytea NOT NULL,		-- 32 zero bytes for NOT_FOUND: one row, not one per presented key
	api_id				text,
	key_id				text,
	identity_id			text,
	external_id			text,
	valid				bigint NOT NULL,
	not_found			bigint NOT NULL,
	forbidden			bigint NOT NULL,
	usage_exceeded		bigint NOT NULL,
	rate_limited		bigint NOT NULL,
	disabled			bigint NOT NULL,
	insufficient_permissions bigint NOT NULL,
	expired				bigint NOT NULL,
	spent_credits		bigint NOT NULL,
	latency_sum			double precision NOT NULL,
	latency_hist		bytea NOT NULL,
	last_time			timestamptz NOT NULL,
	CONSTRAINT verification_rollups_key
		UNIQUE NULLS NOT DISTINCT (key_hash, granularity, bucket, identity_id, api_id)
) WITH (fillfactor = 80);	-- room on the page for a key's next verifications in the hour (HOT updates)
CREATE INDEX verification_rollups_api_idx ON unkey.verification_rollups (api_id, granularity, bucket);
COMMENT ON TABLE unkey.verification_rollups IS 'per-key: verification counts per hour, day and month, by key and identity, one column per outcome';

-- The same for the verifications that carry tags, per tag set
CREATE TABLE unkey.verification_tag_rollups (
	LIKE unkey.verification_rollups,
	tags				text[] NOT NULL,	-- sorted and de-duplicated, never empty
	tags_id				uuid NOT NULL,		-- md5 of tags: 20 tags of 512 characters do not fit an index
	CONSTRAINT verification_tag_rollups_key
		UNIQUE NULLS NOT DISTINCT (key_hash, granularity, bucket, tags_id, identity_id, api_id)
) WITH (fillfactor = 80);
CREATE INDEX verification_tag_rollups_api_idx ON unkey.verification_tag_rollups (api_id, granularity, bucket);
COMMENT ON TABLE unkey.verification_tag_rollups IS 'per-key: verification counts of tagged verifications per hour, day and month, by key, identity and tag set';

-- How far the coarser grains are materialised: the day rollups hold every
-- day before day_done, the month rollups every month before month_done, and
-- the hourly rollups before hours_from were pruned.  No row: nothing
-- materialised yet.  Writers of rollups hold ROW SHARE on it, a
-- materialisation EXCLUSIVE, so neither misses the other's rows.  On Citus
-- it is a reference table, and Citus takes both locks on every node.
CREATE TABLE unkey.rollup_state (
	singleton			boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	day_done			timestamptz NOT NULL,
	month_done			timestamptz NOT NULL,
	hours_from			timestamptz
);
COMMENT ON TABLE unkey.rollup_state IS 'reference: how far day and month rollups are materialised, and hourly rollups pruned';

CREATE TABLE unkey.event_settings (
	singleton			boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	retention			interval CHECK (retention > interval '0'),
	hourly_retention	interval CHECK (hourly_retention >= interval '2 days')
);
COMMENT ON TABLE unkey.event_settings IS 'local: how long raw events (unkey_set_retention) and hourly rollups (unkey_set_hourly_retention) are kept; NULL keeps them forever';

-- Rate-limit checks per hour (UTC), namespace and identifier, kept up to date
-- as events are written; days and months are summed from the hours
CREATE TABLE unkey.ratelimit_rollups (
	bucket				timestamptz NOT NULL,
	namespace_id		text NOT NULL,
	identifier			text NOT NULL,
	passed				bigint NOT NULL,
	limited				bigint NOT NULL,
	last_time			timestamptz NOT NULL,
	PRIMARY KEY (namespace_id, identifier, bucket)
) WITH (fillfactor = 80);	-- room for an identifier's next checks in the hour (HOT updates)
COMMENT ON TABLE unkey.ratelimit_rollups IS 'per-identifier: rate-limit checks per hour, namespace and identifier, passed and limited';

-- pg_dump carries user data; the extension recreates everything else
SELECT pg_catalog.pg_extension_config_dump('unkey.verification_rollups', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.verification_tag_rollups', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.event_settings', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.ratelimit_rollups', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.rollup_state', '');

CREATE FUNCTION unkey._latency_hist(latencies double precision[]) RETURNS bytea
	AS 'MODULE_PATHNAME', 'unkey_hist_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._latency_hist(double precision[]) IS 'private: the latency histogram of some latencies (ms)';
CREATE FUNCTION unkey._hist_add(a bytea, b bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'unkey_hist_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._hist_add(bytea, bytea) IS 'private: two latency histograms merged';
CREATE FUNCTION unkey._latency_quantile(hist bytea, q double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'unkey_hist_quantile_stored' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._latency_quantile(bytea, double precision) IS 'private: a quantile (ms) of a latency histogram, within a factor of two';
CREATE FUNCTION unkey._hist_sub(a bytea, b bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'unkey_hist_subtract' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._hist_sub(bytea, bytea) IS 'private: the latencies of a histogram beyond those of a part of it';
CREATE AGGREGATE unkey._latency_hist_sum(bytea) (SFUNC = unkey._hist_add, STYPE = bytea, COMBINEFUNC = unkey._hist_add, PARALLEL = SAFE);
COMMENT ON AGGREGATE unkey._latency_hist_sum(bytea) IS 'private: latency histograms merged';

-- The day partitions (UTC) of an event table for these times, created when missing
CREATE FUNCTION unkey._ensure_partitions(parent text, times timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	day timestamptz;
	part text;
BEGIN
	FOR day IN SELECT DISTINCT date_trunc('day', t, 'UTC') FROM unnest(times) t WHERE t IS NOT NULL LOOP
		part := parent || '_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD');
		CONTINUE WHEN to_regclass(format('unkey.%I', part)) IS NOT NULL;
		-- on a Citus worker, the coordinator creates them, with their shards
		IF unkey._citus_worker_table(format('unkey.%I', parent)::regclass) THEN
			PERFORM unkey._on_coordinator(format('unkey._ensure_partitions(%L, ARRAY[%s]::pg_catalog.timestamptz[])', parent,
												 (SELECT string_agg(unkey._timestamptz_literal(x), ', ') FROM unnest(times) x)));
			RETURN;
		END IF;
		BEGIN
			-- the bounds in UTC, whatever the session's DateStyle and TimeZone
			EXECUTE format('CREATE TABLE unkey.%I PARTITION OF unkey.%I FOR VALUES FROM (%L) TO (%L)', part, parent,
						   to_char(day AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'),
						   to_char((day + interval '24 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
		EXCEPTION WHEN duplicate_table OR unique_violation THEN
			NULL;				-- another writer created it first
		END;
	END LOOP;
END
$$;
COMMENT ON FUNCTION unkey._ensure_partitions(text, timestamptz[]) IS 'private: create the day partitions these events need';

-- Write events given as arrays the way the event writer writes them (src/eventstore.c)
CREATE FUNCTION unkey._store_verifications(t timestamptz[], latency double precision[], key_hash bytea[],
										   request_id text[], api_id text[], key_id text[], identity_id text[],
										   external_id text[], outcome text[], tags text[], spent bigint[])
RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_store_verifications' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey._store_verifications(timestamptz[], double precision[], bytea[], text[], text[], text[], text[], text[], text[], text[], bigint[]) IS 'private: write verification events (tags as array literals) and roll them up, as the event writer does';
CREATE FUNCTION unkey._store_ratelimits(t timestamptz[], latency double precision[], request_id text[],
										namespace_id text[], namespace text[], identifier text[], override_id text[],
										passed boolean[], "limit" bigint[], remaining bigint[], reset timestamptz[],
										cost bigint[])
RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_store_ratelimits' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey._store_ratelimits(timestamptz[], double precision[], text[], text[], text[], text[], text[], boolean[], bigint[], bigint[], timestamptz[], bigint[]) IS 'private: write rate-limit events and roll them up per hour, as the event writer does';

/*
 * Materialise the days, and the months, that have closed by now from the
 * finer grain, set-based, and prune the hourly rollups past the hourly
 * retention (only what the days already hold).  One transaction: a crash
 * leaves all of it or none.
 */
CREATE FUNCTION unkey._materialize_rollups(now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	st unkey.rollup_state;
	step record;
	tab text;
	tagged boolean;
	done timestamptz;
	cut timestamptz;
	keep interval := (SELECT e.hourly_retention FROM unkey.event_settings e);
BEGIN
	-- on Citus the coordinator materialises, for every node
	IF unkey._citus_worker_table('unkey.verification_rollups'::regclass) THEN
		PERFORM unkey._on_coordinator(format('unkey._materialize_rollups(%s)', unkey._timestamptz_literal(now)));
		RETURN;
	END IF;
	-- each statement must see what committed before it, the batches the lock waited for included
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'rollups are materialised in read committed transactions only'::text,
							 'Leave it to the event writer, or SET TRANSACTION ISOLATION LEVEL READ COMMITTED.'::text);
	END IF;
	-- no batch is being added meanwhile: each is either in what we read, or waits and sees the new state
	LOCK TABLE unkey.rollup_state IN EXCLUSIVE MODE;
	SELECT * INTO st FROM unkey.rollup_state;
	IF NOT FOUND THEN
		-- the first time: after the days and months already there (a restore without this table's
		-- row), else from the oldest hour, or today when there is none
		st.day_done := coalesce((SELECT max(r.bucket) + interval '24 hours' FROM unkey.verification_rollups r
								  WHERE r.granularity = 'day'),
								date_trunc('day', coalesce((SELECT min(r.bucket) FROM unkey.verification_rollups r
															 WHERE r.granularity = 'hour'), now), 'UTC'));
		st.month_done := coalesce((SELECT date_trunc('month', max(r.bucket) + interval '32 days', 'UTC')
									 FROM unkey.verification_rollups r WHERE r.granularity = 'month'),
								  date_trunc('month', coalesce((SELECT min(r.bucket) FROM unkey.verification_rollups r
																 WHERE r.granularity IN ('day', 'hour')), now), 'UTC'));
	END IF;
	FOR step IN SELECT * FROM (VALUES ('hour', 'day'), ('day', 'month')) AS v(finer, coarser) LOOP
		done := CASE step.coarser WHEN 'day' THEN st.day_done ELSE st.month_done END;
		CONTINUE WHEN date_trunc(step.coarser, now, 'UTC') <= done;
		FOREACH tab IN ARRAY ARRAY['verification_rollups', 'verification_tag_rollups'] LOOP
			tagged := tab = 'verification_tag_rollups';
			EXECUTE format(
				'INSERT INTO unkey.%1$I (granularity, bucket, key_hash, api_id, key_id, identity_id, external_id,'
				' valid, not_found, forbidden, usage_exceeded, rate_limited, disabled, insufficient_permissions,'
				' expired, spent_credits, latency_sum, latency_hist, last_time%2$s)'
				' SELECT $1, date_trunc($1, r.bucket, ''UTC''), r.key_hash, r.api_id, max(r.key_id), r.identity_id,'
				' max(r.external_id), sum(r.valid), sum(r.not_found), sum(r.forbidden), sum(r.usage_exceeded),'
				' sum(r.rate_limited), sum(r.disabled), sum(r.insufficient_permissions), sum(r.expired),'
				' sum(r.spent_credits), sum(r.latency_sum), unkey._latency_hist_sum(r.latency_hist), max(r.last_time)%3$s'
				' FROM unkey.%1$I r WHERE r.granularity = $2 AND r.bucket >= $3 AND r.bucket < $4'
				' GROUP BY 2, r.key_hash, r.identity_id, r.api_id%4$s',
				tab, CASE WHEN tagged THEN ', tags, tags_id' ELSE '' END,
				CASE WHEN tagged THEN ', min(r.tags), r.tags_id' ELSE '' END,
				CASE WHEN tagged THEN ', r.tags_id' ELSE '' END)
			USING step.coarser, step.finer, done, date_trunc(step.coarser, now, 'UTC');
		END LOOP;
		IF step.coarser = 'day' THEN
			st.day_done := date_trunc('day', now, 'UTC');
		ELSE
			st.month_done := date_trunc('month', now, 'UTC');
		END IF;
	END LOOP;
	cut := least(st.day_done, date_trunc('day', now - keep, 'UTC'));
	IF keep IS NOT NULL AND cut > coalesce(st.hours_from, '-infinity') THEN
		DELETE FROM unkey.verification_rollups r WHERE r.granularity = 'hour' AND r.bucket < cut;
		DELETE FROM unkey.verification_tag_rollups r WHERE r.granularity = 'hour' AND r.bucket < cut;
		st.hours_from := cut;
	END IF;
	INSERT INTO unkey.rollup_state AS s VALUES (true, st.day_done, st.month_done, st.hours_from)
	ON CONFLICT (singleton) DO UPDATE
	   SET day_done = EXCLUDED.day_done, month_done = EXCLUDED.month_done, hours_from = EXCLUDED.hours_from;
END
$$;
COMMENT ON FUNCTION unkey._materialize_rollups(timestamptz) IS 'private: materialise the closed days and months of the verification rollups, and prune old hours';

-- Drop the event partitions that lie wholly before now - retention; returns their names
CREATE FUNCTION unkey._apply_retention(now timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	keep interval;
	part record;
BEGIN
	-- on Citus the coordinator drops the partitions, with their shards on every node
	IF unkey._citus_worker_table('unkey.verification_events'::regclass) THEN
		RETURN QUERY SELECT unnest(string_to_array(unkey._on_coordinator(
			format('(SELECT pg_catalog.string_agg(p, '' '') FROM unkey._apply_retention(%s) p)', unkey._timestamptz_literal(now))), ' '));
		RETURN;
	END IF;
	keep := (SELECT s.retention FROM unkey.event_settings s);
	IF keep IS NULL THEN
		RETURN;
	END IF;
	FOR part IN
		SELECT c.relname
		  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent IN ('unkey.verification_events'::regclass, 'unkey.ratelimit_events'::regclass)
		   AND c.relname ~ '_p[0-9]{8}$'
		   AND (substring(c.relname FROM '_p([0-9]{8})$')::date::timestamp AT TIME ZONE 'UTC')
			   + interval '24 hours' <= now - keep
		 ORDER BY c.relname
	LOOP
		-- another run (the writers of several Citus nodes ask the coordinator) may have dropped it meanwhile
		BEGIN
			EXECUTE format('DROP TABLE unkey.%I', part.relname);
			RETURN NEXT part.relname;
		EXCEPTION WHEN undefined_table THEN
			NULL;
		END;
	END LOOP;
END
$$;
COMMENT ON FUNCTION unkey._apply_retention(timestamptz) IS 'private: drop event partitions past the retention';

-- The event writer's upkeep, once a minute: partitions for today and tomorrow, then the retention
CREATE FUNCTION unkey._maintain_events(now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF unkey._citus_worker_table('unkey.verification_events'::regclass) THEN
		PERFORM unkey._on_coordinator(format('unkey._maintain_events(%s)', unkey._timestamptz_literal(now)));
		RETURN;
	END IF;
	PERFORM unkey._ensure_partitions(p, ARRAY[now, now + interval '24 hours'])
	   FROM unnest(ARRAY['verification_events', 'ratelimit_events']) p;
	PERFORM unkey._apply_retention(now);
END
$$;
COMMENT ON FUNCTION unkey._maintain_events(timestamptz) IS 'private: create the coming partitions and apply the retention';

CREATE FUNCTION unkey.unkey_set_retention(retention interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF retention <= interval '0' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'retention must be positive, or NULL to keep events forever'::text,
							 'Pass an interval such as ''90 days'', or NULL to keep events forever.'::text);
	END IF;
	INSERT INTO unkey.event_settings AS s (retention) VALUES (retention)
	ON CONFLICT (singleton) DO UPDATE SET retention = EXCLUDED.retention;
	DELETE FROM unkey.event_settings s WHERE s.retention IS NULL AND s.hourly_retention IS NULL;
END
$$;
COMMENT ON FUNCTION unkey.unkey_set_retention(interval) IS 'keep raw events this long (whole days); the event writer drops older partitions; NULL keeps them forever';

CREATE FUNCTION unkey.unkey_set_hourly_retention(retention interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF retention < interval '2 days' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'retention must be at least 2 days, or NULL to keep hourly rollups forever'::text,
							 'Pass an interval such as ''90 days''; the day and month rollups keep the history.'::text);
	END IF;
	INSERT INTO unkey.event_settings AS s (hourly_retention) VALUES (retention)
	ON CONFLICT (singleton) DO UPDATE SET hourly_retention = EXCLUDED.hourly_retention;
	DELETE FROM unkey.event_settings s WHERE s.retention IS NULL AND s.hourly_retention IS NULL;
END
$$;
COMMENT ON FUNCTION unkey.unkey_set_hourly_retention(interval) IS 'keep hourly verification rollups this long (whole days, once their day is materialised); NULL keeps them forever';

CREATE FUNCTION unkey.unkey_apply_retention()
RETURNS SETOF text
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._apply_retention(unkey.now()) $$;
COMMENT ON FUNCTION unkey.unkey_apply_retention() IS 'apply the retention now (the event writer does it every minute); returns the dropped partitions';

CREATE FUNCTION unkey.unkey_flush_events() RETURNS bigint
	AS 'MODULE_PATHNAME', 'unkey_flush_events' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.unkey_flush_events() IS 'wait until the events buffered in this database are written; returns how many were buffered';

CREATE FUNCTION unkey.unkey_events_info(
	OUT database text, OUT buffered bigint, OUT buffered_bytes bigint, OUT buffer_bytes bigint,
	OUT appended bigint, OUT written bigint, OUT inline_writes bigint, OUT full_waits bigint,
	OUT discarded bigint, OUT writer_pid integer, OUT last_flush timestamptz)
RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'unkey_events_info' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.unkey_events_info() IS 'the event buffers in shared memory, one row per database using one';

-- Every grain complete up to the last flush, of both rollup tables
-- (unkey._rollups, unkey._tagged_rollups): the materialised rows, and for
-- the days and months still open the finer rows, truncated to the grain (not
-- added up: readers group).  One snapshot sees both sides of a
-- materialisation, so no bucket is counted twice or missed.
DO $$
DECLARE
	v text[];
	cols text := 'r.key_hash, r.api_id, r.key_id, r.identity_id, r.external_id, r.valid, r.not_found, r.forbidden,'
				 ' r.usage_exceeded, r.rate_limited, r.disabled, r.insufficient_permissions, r.expired,'
				 ' r.spent_credits, r.latency_sum, r.latency_hist, r.last_time';
BEGIN
	FOREACH v SLICE 1 IN ARRAY ARRAY[['_rollups', 'verification_rollups', ''],
									 ['_tagged_rollups', 'verification_tag_rollups', ', r.tags, r.tags_id']] LOOP
		EXECUTE format(
			'CREATE VIEW unkey.%1$I AS'
			' SELECT r.granularity, r.bucket, %3$s%4$s FROM unkey.%2$I r'
			' UNION ALL'
			' SELECT ''day''::text, date_trunc(''day'', r.bucket, ''UTC''), %3$s%4$s FROM unkey.%2$I r'
			'  WHERE r.granularity = ''hour'''
			'    AND r.bucket >= coalesce((SELECT s.day_done FROM unkey.rollup_state s), ''-infinity'')'
			' UNION ALL'
			' SELECT ''month''::text, date_trunc(''month'', r.bucket, ''UTC''), %3$s%4$s FROM unkey.%2$I r'
			'  WHERE r.granularity = ''day'''
			'    AND r.bucket >= coalesce((SELECT s.month_done FROM unkey.rollup_state s), ''-infinity'')'
			' UNION ALL'
			' SELECT ''month''::text, date_trunc(''month'', r.bucket, ''UTC''), %3$s%4$s FROM unkey.%2$I r'
			'  WHERE r.granularity = ''hour'''
			'    AND r.bucket >= coalesce((SELECT s.day_done FROM unkey.rollup_state s), ''-infinity'')',
			v[1], v[2], cols, v[3]);
		EXECUTE format('COMMENT ON VIEW unkey.%I IS %L', v[1],
					   format('private: %s at every grain, the open days and months from the finer grain', v[2]));
	END LOOP;
END
$$;

-- Per grain, bucket, key, identity, API and tag set: the tagged rollups, and
-- the verifications without tags as what the key's rollup holds beyond them
-- (tags '{}')
CREATE VIEW unkey._tag_sets AS
WITH tagged AS NOT MATERIALIZED (
	SELECT t.granularity, t.bucket, t.key_hash, t.identity_id, t.api_id, t.tags_id, max(t.key_id) AS key_id,
		   max(t.external_id) AS external_id, min(t.tags) AS tags, sum(t.valid) AS valid, sum(t.not_found) AS not_found,
		   sum(t.forbidden) AS forbidden, sum(t.usage_exceeded) AS usage_exceeded, sum(t.rate_limited) AS rate_limited,
		   sum(t.disabled) AS disabled, sum(t.insufficient_permissions) AS insufficient_permissions,
		   sum(t.expired) AS expired, sum(t.spent_credits) AS spent_credits, sum(t.latency_sum) AS latency_sum,
		   unkey._latency_hist_sum(t.latency_hist) AS latency_hist, max(t.last_time) AS last_time
	  FROM unkey._tagged_rollups t
	 GROUP BY t.granularity, t.bucket, t.key_hash, t.identity_id, t.api_id, t.tags_id
), everything AS (
	SELECT r.granularity, r.bucket, r.key_hash, r.identity_id, r.api_id, max(r.key_id) AS key_id,
		   max(r.external_id) AS external_id, sum(r.valid) AS valid, sum(r.not_found) AS not_found,
		   sum(r.forbidden) AS forbidden, sum(r.usage_exceeded) AS usage_exceeded, sum(r.rate_limited) AS rate_limited,
		   sum(r.disabled) AS disabled, sum(r.insufficient_permissions) AS insufficient_permissions,
		   sum(r.expired) AS expired, sum(r.spent_credits) AS spent_credits, sum(r.latency_sum) AS latency_sum,
		   unkey._latency_hist_sum(r.latency_hist) AS latency_hist, max(r.last_time) AS last_time
	  FROM unkey._rollups r
	 GROUP BY r.granularity, r.bucket, r.key_hash, r.identity_id, r.api_id
), tagged_per_key AS (
	SELECT t.granularity, t.bucket, t.key_hash, t.identity_id, t.api_id, sum(t.valid) AS valid,
		   sum(t.not_found) AS not_found, sum(t.forbidden) AS forbidden, sum(t.usage_exceeded) AS usage_exceeded,
		   sum(t.rate_limited) AS rate_limited, sum(t.disabled) AS disabled,
		   sum(t.insufficient_permissions) AS insufficient_permissions, sum(t.expired) AS expired,
		   sum(t.spent_credits) AS spent_credits, sum(t.latency_sum) AS latency_sum,
		   unkey._latency_hist_sum(t.latency_hist) AS latency_hist, max(t.last_time) AS last_time
	  FROM tagged t
	 GROUP BY t.granularity, t.bucket, t.key_hash, t.identity_id, t.api_id
)
SELECT t.granularity, t.bucket, t.key_hash, t.api_id, t.key_id, t.identity_id, t.external_id, t.tags, t.tags_id,
	   t.valid, t.not_found, t.forbidden, t.usage_exceeded, t.rate_limited, t.disabled, t.insufficient_permissions,
	   t.expired, t.spent_credits, t.latency_sum, t.latency_hist, t.last_time
  FROM tagged t
UNION ALL
SELECT e.granularity, e.bucket, e.key_hash, e.api_id, e.key_id, e.identity_id, e.external_id, '{}'::text[],
	   '99914b93-2bd3-7a50-b983-c5e7c90ae93b'::uuid,	-- md5('{}')
	   e.valid - coalesce(p.valid, 0), e.not_found - coalesce(p.not_found, 0), e.forbidden - coalesce(p.forbidden, 0),
	   e.usage_exceeded - coalesce(p.usage_exceeded, 0), e.rate_limited - coalesce(p.rate_limited, 0),
	   e.disabled - coalesce(p.disabled, 0), e.insufficient_permissions - coalesce(p.insufficient_permissions, 0),
	   e.expired - coalesce(p.expired, 0), e.spent_credits - coalesce(p.spent_credits, 0),
	   e.latency_sum - coalesce(p.latency_sum, 0), unkey._hist_sub(e.latency_hist, p.latency_hist),
	   -- the last untagged verification is not known apart: the key's last one, when it is not a tagged one
	   CASE WHEN p.last_time IS NULL OR e.last_time > p.last_time THEN e.last_time END
  FROM everything e
  LEFT JOIN tagged_per_key p
	ON p.granularity = e.granularity AND p.bucket = e.bucket AND p.key_hash = e.key_hash
   AND p.identity_id IS NOT DISTINCT FROM e.identity_id AND p.api_id IS NOT DISTINCT FROM e.api_id
 WHERE e.valid + e.not_found + e.forbidden + e.usage_exceeded + e.rate_limited + e.disabled
	   + e.insufficient_permissions + e.expired
	   > coalesce(p.valid + p.not_found + p.forbidden + p.usage_exceeded + p.rate_limited + p.disabled
				  + p.insufficient_permissions + p.expired, 0);
COMMENT ON VIEW unkey._tag_sets IS 'private: verification counts per grain, bucket, key, identity and tag set, tagged or not';

-- The rollups summed per bucket, key, identity and tag set, one column per outcome
CREATE VIEW unkey.verifications AS
SELECT r.granularity, r.bucket AS time, r.api_id, r.key_id, r.identity_id, r.external_id, r.tags,
	   sum(r.valid) AS valid, sum(r.not_found) AS not_found, sum(r.forbidden) AS forbidden,
	   sum(r.usage_exceeded) AS usage_exceeded, sum(r.rate_limited) AS rate_limited, sum(r.disabled) AS disabled,
	   sum(r.insufficient_permissions) AS insufficient_permissions, sum(r.expired) AS expired,
	   sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded + r.rate_limited + r.disabled
		   + r.insufficient_permissions + r.expired) AS total,
	   sum(r.spent_credits) AS spent_credits,
	   sum(r.latency_sum) / sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded + r.rate_limited
								+ r.disabled + r.insufficient_permissions + r.expired) AS latency_avg,
	   unkey._latency_quantile(unkey._latency_hist_sum(r.latency_hist), 0.75::double precision) AS latency_p75,
	   unkey._latency_quantile(unkey._latency_hist_sum(r.latency_hist), 0.99::double precision) AS latency_p99
  FROM unkey._tag_sets r
 GROUP BY r.granularity, r.bucket, r.api_id, r.key_id, r.identity_id, r.external_id, r.tags_id, r.tags;
COMMENT ON VIEW unkey.verifications IS 'verifications per hour, day or month (granularity), key, identity and tag set, one column per outcome';

-- the same per granularity: verifications_hourly, _daily and _monthly
DO $$
DECLARE
	g text[];
BEGIN
	FOREACH g SLICE 1 IN ARRAY ARRAY[['hourly', 'hour'], ['daily', 'day'], ['monthly', 'month']] LOOP
		EXECUTE format('CREATE VIEW unkey.verifications_%s AS'
					   ' SELECT time, api_id, key_id, identity_id, external_id, tags, valid, not_found, forbidden,'
					   ' usage_exceeded, rate_limited, disabled, insufficient_permissions, expired, total,'
					   ' spent_credits, latency_avg, latency_p75, latency_p99'
					   ' FROM unkey.verifications WHERE granularity = %L', g[1], g[2]);
		EXECUTE format('COMMENT ON VIEW unkey.verifications_%s IS %L', g[1],
					   format('verifications per %s (UTC), key, identity and tag set', g[2]));
	END LOOP;
END
$$;

-- Per key, all time: one column per outcome, and when it was last used
CREATE VIEW unkey.key_usage AS
SELECT r.key_id, max(r.api_id) AS api_id, sum(r.valid) AS valid, sum(r.forbidden) AS forbidden,
	   sum(r.usage_exceeded) AS usage_exceeded, sum(r.rate_limited) AS rate_limited, sum(r.disabled) AS disabled,
	   sum(r.insufficient_permissions) AS insufficient_permissions, sum(r.expired) AS expired,
	   sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded + r.rate_limited + r.disabled
		   + r.insufficient_permissions + r.expired) AS total,
	   sum(r.spent_credits) AS spent_credits, max(r.last_time) AS last_used_at
  FROM unkey._rollups r
 WHERE r.granularity = 'month' AND r.key_id IS NOT NULL
 GROUP BY r.key_id;
COMMENT ON VIEW unkey.key_usage IS 'verifications of each key, all time, one column per outcome, and its last use';

-- Rate-limit checks per namespace and identifier: ratelimits_hourly, _daily
-- and _monthly (UTC), summed from the hourly rollups
DO $$
DECLARE
	g text[];
BEGIN
	FOREACH g SLICE 1 IN ARRAY ARRAY[['hourly', 'hour'], ['daily', 'day'], ['monthly', 'month']] LOOP
		EXECUTE format('CREATE VIEW unkey.ratelimits_%s AS'
					   ' SELECT date_trunc(%L, r.bucket, ''UTC'') AS time, r.namespace_id, n.name AS namespace,'
					   ' r.identifier, sum(r.passed)::bigint AS passed, sum(r.limited)::bigint AS limited,'
					   ' sum(r.passed + r.limited)::bigint AS total, max(r.last_time) AS last_time'
					   ' FROM unkey.ratelimit_rollups r JOIN unkey.ratelimit_namespaces n ON n.id = r.namespace_id'
					   ' GROUP BY 1, r.namespace_id, n.name, r.identifier', g[1], g[2]);
		EXECUTE format('COMMENT ON VIEW unkey.ratelimits_%s IS %L', g[1],
					   format('rate-limit checks per %s (UTC), namespace and identifier: passed, limited and total', g[2]));
	END LOOP;
END
$$;

-- One row of unkey_get_verifications: the grouped columns, then one count per outcome
CREATE TYPE unkey.verification_count AS (
	time				timestamptz,
	key_id				text,
	identity_id			text,
	external_id			text,
	tags				text[],
	tag					text,
	valid				bigint,
	not_found			bigint,
	forbidden			bigint,
	usage_exceeded		bigint,
	rate_limited		bigint,
	disabled			bigint,
	insufficient_permissions bigint,
	expired				bigint,
	total				bigint
);

/*
 * The checked arguments of unkey_get_verifications: the grain to read, the
 * time unit grouped by (NULL: none), the range [first, stop) and the order.
 * Without a time group the hours are summed, from start rounded down to the
 * hour; from the day when the range reaches back into pruned hours.
 */
CREATE FUNCTION unkey._verification_query(api_id text, start timestamptz, "end" timestamptz, group_by text[],
										  tags text[], order_by text, "order" text, "limit" integer,
										  OUT gran text, OUT unit text, OUT first timestamptz, OUT stop timestamptz,
										  OUT sort_by text, OUT descending boolean, OUT tagged boolean,
										  OUT by_key boolean, OUT by_identity boolean, OUT by_tags boolean,
										  OUT by_tag boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	groups text[] := coalesce(group_by, '{}');
	hours_from timestamptz := (SELECT s.hours_from FROM unkey.rollup_state s);
BEGIN
	by_key := 'key' = ANY (groups);
	by_identity := 'identity' = ANY (groups);
	by_tags := 'tags' = ANY (groups);
	by_tag := 'tag' = ANY (groups);
	unit := (SELECT g FROM unnest(groups) g WHERE g IN ('hour', 'day', 'month') LIMIT 1);
	stop := coalesce("end", unkey.now());
	sort_by := coalesce(order_by, CASE WHEN unit IS NOT NULL THEN 'time' ELSE 'total' END);
	IF start IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'start must be given'::text,
							 'Pass the start of the range; the end defaults to now.'::text);
	END IF;
	IF NOT isfinite(start) OR NOT isfinite(stop) THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'start and end must be finite'::text,
							 'Pass real timestamps, not infinity.'::text);
	END IF;
	IF stop <= start THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'end must be after start'::text,
							 'Swap them, or widen the range.'::text);
	END IF;
	IF EXISTS (SELECT FROM unnest(groups) g
				WHERE g IS NULL OR g NOT IN ('key', 'identity', 'tag', 'tags', 'hour', 'day', 'month')) THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'group_by takes key, identity, tag, tags, hour, day and month'::text,
							 'Pass an array such as ''{day,key}''.'::text);
	END IF;
	IF (SELECT count(*) FROM unnest(groups) g WHERE g IN ('hour', 'day', 'month')) > 1 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'group_by takes at most one of hour, day and month'::text,
							 'Pick one time unit.'::text);
	END IF;
	IF by_tag AND by_tags THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'group_by takes tag or tags, not both'::text,
							 'tag counts each tag apart, tags each whole set of tags: pick one.'::text);
	END IF;
	IF sort_by NOT IN ('time', 'total', 'valid', 'not_found', 'forbidden', 'usage_exceeded', 'rate_limited',
					   'disabled', 'insufficient_permissions', 'expired')
	   OR (sort_by = 'time' AND unit IS NULL) THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'order_by must be time (with a time group), total or an outcome'::text,
							 'Order by time (with hour, day or month in group_by), total, or an outcome such as valid.'::text);
	END IF;
	IF "order" IS NOT NULL AND "order" NOT IN ('asc', 'desc') THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'order must be asc or desc'::text,
							 'Pass ''asc'' or ''desc''.'::text);
	END IF;
	IF "limit" < 1 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'limit must be at least 1'::text,
							 'Pass a limit of 1 or more.'::text);
	END IF;
	IF NOT EXISTS (SELECT FROM unkey.apis a WHERE a.id = _verification_query.api_id) THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	descending := coalesce("order" = 'desc', sort_by <> 'time');
	-- tag sets are counted in the tagged rollups; without them, the key's rollups answer
	tagged := by_tag OR by_tags OR _verification_query.tags IS NOT NULL;
	gran := coalesce(unit, CASE WHEN start < hours_from THEN 'day' ELSE 'hour' END);
	-- an hourly series over pruned hours would show zeros where there were verifications
	IF unit = 'hour' AND start < hours_from THEN
		PERFORM unkey._raise('invalid_parameter_value'::text,
							 format('hourly rollups before %s were pruned', to_char(hours_from AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')),
							 'Start the hourly series later, or group by day or month (unkey_set_hourly_retention).'::text);
	END IF;
	first := date_trunc(gran, start, 'UTC');
	-- a time series has one row per bucket and group: keep it to a size a dashboard can use
	IF unit IS NOT NULL AND extract(epoch FROM stop - first) / extract(epoch FROM ('1 ' || unit)::interval) > 10000 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('the range holds more than 10000 %s', unit || 's'),
							 'Group by a longer unit, or ask for a shorter range.'::text);
	END IF;
END
$$;
COMMENT ON FUNCTION unkey._verification_query(text, timestamptz, timestamptz, text[], text[], text, text, integer) IS 'private: the checked arguments of unkey_get_verifications';

/*
 * Unkey's analytics.getVerifications, over the rollups: counts per outcome in
 * [start, end), grouped by any of key, identity, tag (each tag apart), tags
 * (the whole set) and one of hour, day or month.  A time series is gap-filled
 * with zero rows, for each group seen.  Buckets are UTC; start is rounded
 * down to the bucket (the hour when no time is grouped).  Plain SQL: it
 * reads the rollups of one grain (the key's, or the tag sets' when tags
 * matter) once, groups once, and builds the grid of buckets only for the
 * groups that miss one.
 */
CREATE FUNCTION unkey.unkey_get_verifications(
	api_id			text,
	start			timestamptz,
	"end"			timestamptz DEFAULT NULL,
	group_by		text[]	DEFAULT NULL,
	key_id			text	DEFAULT NULL,
	external_id		text	DEFAULT NULL,
	tags			text[]	DEFAULT NULL,
	order_by		text	DEFAULT NULL,
	"order"			text	DEFAULT NULL,
	"limit"			integer DEFAULT NULL)
RETURNS SETOF unkey.verification_count
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
SET plan_cache_mode = force_custom_plan	-- the arguments are constants of the plan: branches it does not need are pruned
AS $$
-- as in SQL: a column, not the argument of the same name
#variable_conflict use_column
DECLARE
	-- the checked arguments
	v record;
	on_citus boolean := to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL;
BEGIN
	SELECT * INTO v FROM unkey._verification_query(api_id, start, "end", group_by, tags, order_by, "order", "limit");
	RETURN QUERY
	WITH src AS (
		-- the key's rollups, or with tags the tag sets; each tag apart only when grouped by tag
		SELECT k.bucket, k.key_id, k.identity_id, k.external_id, NULL::text[] AS tags, NULL::text AS tag,
			   k.valid, k.not_found, k.forbidden, k.usage_exceeded, k.rate_limited, k.disabled,
			   k.insufficient_permissions, k.expired
		  FROM unkey._rollups k
		 WHERE NOT v.tagged
		   AND k.api_id = unkey_get_verifications.api_id AND k.granularity = v.gran
		   AND k.bucket >= v.first AND k.bucket < v.stop
		   AND (unkey_get_verifications.key_id IS NULL OR k.key_id = unkey_get_verifications.key_id)
		   AND (unkey_get_verifications.external_id IS NULL OR k.external_id = unkey_get_verifications.external_id)
		UNION ALL
		SELECT t.bucket, t.key_id, t.identity_id, t.external_id, t.tags, one.tag,
			   t.valid, t.not_found, t.forbidden, t.usage_exceeded, t.rate_limited, t.disabled,
			   t.insufficient_permissions, t.expired
		  FROM unkey._tag_sets t
		  LEFT JOIN LATERAL unnest(CASE WHEN v.by_tag THEN t.tags END) AS one(tag) ON true
		 WHERE v.tagged
		   AND t.api_id = unkey_get_verifications.api_id AND t.granularity = v.gran
		   AND t.bucket >= v.first AND t.bucket < v.stop
		   AND (unkey_get_verifications.key_id IS NULL OR t.key_id = unkey_get_verifications.key_id)
		   AND (unkey_get_verifications.external_id IS NULL OR t.external_id = unkey_get_verifications.external_id)
		   -- the untagged rows' tags are a constant, and a qual on it a constant qual, which prunes them
		   -- here but which Citus cannot plan beside _tag_sets' outer join (PostgreSQL 15): on Citus the
		   -- bucket, never NULL, keeps it a qual on the row
		   AND (unkey_get_verifications.tags IS NULL
				OR CASE WHEN on_citus AND t.bucket IS NOT NULL THEN t.tags WHEN NOT on_citus THEN t.tags END
				   @> unkey_get_verifications.tags)
	), agg AS (
		SELECT CASE WHEN v.unit IS NOT NULL THEN r.bucket END AS t,
			   -- bytewise comparisons: the grouping sorts hundreds of thousands of ids
			   CASE WHEN v.by_key THEN r.key_id END COLLATE "C" AS k,
			   CASE WHEN v.by_identity THEN r.identity_id END COLLATE "C" AS i,
			   CASE WHEN v.by_identity THEN r.external_id END COLLATE "C" AS x,
			   CASE WHEN v.by_tags THEN r.tags END AS g,
			   r.tag COLLATE "C" AS tg,
			   sum(r.valid)::bigint AS valid, sum(r.not_found)::bigint AS not_found,
			   sum(r.forbidden)::bigint AS forbidden, sum(r.usage_exceeded)::bigint AS usage_exceeded,
			   sum(r.rate_limited)::bigint AS rate_limited, sum(r.disabled)::bigint AS disabled,
			   sum(r.insufficient_permissions)::bigint AS insufficient_permissions, sum(r.expired)::bigint AS expired,
			   sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded + r.rate_limited + r.disabled
				   + r.insufficient_permissions + r.expired)::bigint AS total
		  FROM src r
		 GROUP BY 1, 2, 3, 4, 5, 6
	), buckets AS (
		-- every bucket of a time series, stepped in UTC wall time
		SELECT w AT TIME ZONE 'UTC' AS t
		  FROM generate_series(v.first AT TIME ZONE 'UTC', (v.stop - interval '1 microsecond') AT TIME ZONE 'UTC',
							   ('1 ' || v.unit)::interval) AS w
		 WHERE v.unit IS NOT NULL
	), gapped AS (
		-- the groups that miss a bucket (most have none); a time series alone always has its group
		SELECT a.k, a.i, a.x, a.g, a.tg FROM agg a
		 GROUP BY a.k, a.i, a.x, a.g, a.tg
		HAVING count(*) < (SELECT count(*) FROM buckets)
		UNION
		SELECT NULL, NULL, NULL, NULL, NULL
		 WHERE NOT (group_by && '{key,identity,tags,tag}'::text[]) AND v.unit IS NOT NULL
	), rows AS (
		SELECT a.* FROM agg a
		UNION ALL
		-- the missing buckets of those groups, as zeros ('' stands for NULL: no id, tag or tag set is empty)
		SELECT b.t, gp.k, gp.i, gp.x, gp.g, gp.tg, 0, 0, 0, 0, 0, 0, 0, 0, 0
		  FROM buckets b, gapped gp
		 WHERE NOT EXISTS (SELECT FROM agg a
							WHERE a.t = b.t AND coalesce(a.k, '') = coalesce(gp.k, '')
							  AND coalesce(a.i, '') = coalesce(gp.i, '') AND coalesce(a.x, '') = coalesce(gp.x, '')
							  AND coalesce(a.g, '{}') = coalesce(gp.g, '{}') AND coalesce(a.tg, '') = coalesce(gp.tg, ''))
	)
	-- ordered by time, or by a count (bigint, not through a numeric of both), then by the groups
	SELECT rw.t, rw.k, rw.i, rw.x, rw.g, rw.tg, rw.valid, rw.not_found, rw.forbidden, rw.usage_exceeded,
		   rw.rate_limited, rw.disabled, rw.insufficient_permissions, rw.expired, rw.total
	  FROM rows rw
	 ORDER BY CASE WHEN (v.sort_by = 'time' AND NOT v.descending) THEN rw.t END ASC,
			  CASE WHEN (v.sort_by = 'time' AND v.descending) THEN rw.t END DESC,
			  CASE WHEN (v.sort_by <> 'time') THEN
				  CASE v.sort_by
					  WHEN 'total' THEN rw.total WHEN 'valid' THEN rw.valid
					  WHEN 'not_found' THEN rw.not_found WHEN 'forbidden' THEN rw.forbidden
					  WHEN 'usage_exceeded' THEN rw.usage_exceeded WHEN 'rate_limited' THEN rw.rate_limited
					  WHEN 'disabled' THEN rw.disabled WHEN 'insufficient_permissions' THEN rw.insufficient_permissions
					  ELSE rw.expired END
				  * CASE WHEN v.descending THEN -1 ELSE 1 END END ASC,
			  rw.t, rw.k COLLATE "C", rw.i COLLATE "C", rw.g::text COLLATE "C", rw.tg COLLATE "C"
	 LIMIT unkey_get_verifications."limit";
END
$$;
COMMENT ON FUNCTION unkey.unkey_get_verifications(text, timestamptz, timestamptz, text[], text, text, text[], text, text, integer) IS 'verification counts per outcome, grouped and gap-filled, as Unkey''s analytics.getVerifications';
