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

-- Verification counts per hour, day and month, kept up to date as events are
-- written; latencies as a histogram (see src/analytics.c)
CREATE TABLE unkey.verification_rollups (
	granularity			text NOT NULL CHECK (granularity IN ('hour', 'day', 'month')),
	bucket				timestamptz NOT NULL,
	key_hash			bytea NOT NULL,
	api_id				text,
	key_id				text,
	identity_id			text,
	external_id			text,
	outcome				text NOT NULL,
	tags				text[] NOT NULL,
	tags_md5			text NOT NULL,		-- the tag set in the unique key: 20 tags of 512 characters do not fit an index
	count				bigint NOT NULL,
	spent_credits		bigint NOT NULL,
	latency_sum			double precision NOT NULL,
	latency_hist		bigint[] NOT NULL,
	last_time			timestamptz NOT NULL,
	CONSTRAINT verification_rollups_key
		UNIQUE NULLS NOT DISTINCT (key_hash, granularity, bucket, outcome, tags_md5, key_id, identity_id, api_id)
);
CREATE INDEX verification_rollups_api_idx ON unkey.verification_rollups (api_id, granularity, bucket);
COMMENT ON TABLE unkey.verification_rollups IS 'per-key: verification counts per hour, day and month, by key, identity, outcome and tags';

CREATE TABLE unkey.event_settings (
	singleton			boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	retention			interval CHECK (retention > interval '0')
);
COMMENT ON TABLE unkey.event_settings IS 'local: how long raw events are kept (unkey_set_retention); no row keeps them forever';

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
);
COMMENT ON TABLE unkey.ratelimit_rollups IS 'per-identifier: rate-limit checks per hour, namespace and identifier, passed and limited';

-- pg_dump carries user data; the extension recreates everything else
SELECT pg_catalog.pg_extension_config_dump('unkey.verification_rollups', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.event_settings', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.ratelimit_rollups', '');

CREATE FUNCTION unkey._latency_hist(latencies double precision[]) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'unkey_latency_hist' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._latency_hist(double precision[]) IS 'private: the latency histogram of some latencies (ms)';
CREATE FUNCTION unkey._hist_add(a bigint[], b bigint[]) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'unkey_hist_add' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._hist_add(bigint[], bigint[]) IS 'private: two latency histograms merged';
CREATE FUNCTION unkey._latency_quantile(hist bigint[], q double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'unkey_hist_quantile' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._latency_quantile(bigint[], double precision) IS 'private: a quantile (ms) of a latency histogram, within a factor of two';
CREATE AGGREGATE unkey._latency_hist_sum(bigint[]) (SFUNC = unkey._hist_add, STYPE = bigint[], COMBINEFUNC = unkey._hist_add, PARALLEL = SAFE);
COMMENT ON AGGREGATE unkey._latency_hist_sum(bigint[]) IS 'private: latency histograms merged';

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

-- Write verification events and add them to the rollups; the event writer calls it with a batch
CREATE FUNCTION unkey._store_verifications(t timestamptz[], latency double precision[], key_hash bytea[],
										   request_id text[], api_id text[], key_id text[], identity_id text[],
										   external_id text[], outcome text[], tags text[], spent bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM unkey._ensure_partitions('verification_events'::text, t);
	-- tags come as array literals, one per event
	INSERT INTO unkey.verification_events (time, request_id, key_hash, api_id, key_id, identity_id,
										   external_id, outcome, tags, spent_credits, latency)
	SELECT e.t, e.r, e.h, e.a, e.k, e.i, e.x, e.o, e.g::text[], e.s, e.l
	  FROM unnest(t, request_id, key_hash, api_id, key_id, identity_id, external_id, outcome, tags, spent, latency)
		   AS e(t, r, h, a, k, i, x, o, g, s, l);
	-- one row per unique key of the rollup, so no row is hit twice, and in the
	-- unique key's order, so concurrent writers lock rows in the same order
	INSERT INTO unkey.verification_rollups AS r (granularity, bucket, key_hash, api_id, key_id, identity_id,
												 external_id, outcome, tags, tags_md5, count, spent_credits,
												 latency_sum, latency_hist, last_time)
	SELECT u.unit, date_trunc(u.unit, e.t, 'UTC'), e.h, e.a, e.k, e.i, max(e.x), e.o,
		   coalesce(e.g, '{}')::text[], md5(coalesce(e.g, '{}')), count(*), sum(e.s), coalesce(sum(e.l), 0),
		   unkey._latency_hist(array_agg(e.l)), max(e.t)
	  FROM unnest(t, key_hash, api_id, key_id, identity_id, external_id, outcome, tags, spent, latency)
		   AS e(t, h, a, k, i, x, o, g, s, l),
		   unnest(ARRAY['hour', 'day', 'month']) AS u(unit)
	 GROUP BY e.h, u.unit, date_trunc(u.unit, e.t, 'UTC'), e.o, coalesce(e.g, '{}'), e.k, e.i, e.a
	 ORDER BY e.h, u.unit, date_trunc(u.unit, e.t, 'UTC'), e.o, md5(coalesce(e.g, '{}')), e.k, e.i, e.a
	ON CONFLICT ON CONSTRAINT verification_rollups_key DO UPDATE
	   SET count = r.count + EXCLUDED.count,
		   spent_credits = r.spent_credits + EXCLUDED.spent_credits,
		   latency_sum = r.latency_sum + EXCLUDED.latency_sum,
		   latency_hist = unkey._hist_add(r.latency_hist, EXCLUDED.latency_hist),
		   last_time = greatest(r.last_time, EXCLUDED.last_time),
		   external_id = coalesce(EXCLUDED.external_id, r.external_id);
END
$$;
COMMENT ON FUNCTION unkey._store_verifications(timestamptz[], double precision[], bytea[], text[], text[], text[], text[], text[], text[], text[], bigint[]) IS 'private: write verification events and roll them up';

-- Write rate-limit events; the event writer calls it with a batch
CREATE FUNCTION unkey._store_ratelimits(t timestamptz[], latency double precision[], request_id text[],
										namespace_id text[], namespace text[], identifier text[], override_id text[],
										passed boolean[], "limit" bigint[], remaining bigint[], reset timestamptz[],
										cost bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM unkey._ensure_partitions('ratelimit_events'::text, t);
	INSERT INTO unkey.ratelimit_events (time, request_id, namespace_id, namespace, identifier, passed,
										"limit", remaining, reset, cost, override_id, latency)
	SELECT e.t, e.r, e.ni, e.n, e.i, e.p, e.lim, e.rem, e.rs, e.c, e.o, e.l
	  FROM unnest(t, request_id, namespace_id, namespace, identifier, passed, "limit", remaining, reset, cost,
				  override_id, latency) AS e(t, r, ni, n, i, p, lim, rem, rs, c, o, l);
	-- one row per hour, namespace and identifier of the batch, in the primary
	-- key's order, so concurrent writers lock rows in the same order
	INSERT INTO unkey.ratelimit_rollups AS r (bucket, namespace_id, identifier, passed, limited, last_time)
	SELECT date_trunc('hour', e.t, 'UTC'), e.ni, e.i, count(*) FILTER (WHERE e.p), count(*) FILTER (WHERE NOT e.p),
		   max(e.t)
	  FROM unnest(t, namespace_id, identifier, passed) AS e(t, ni, i, p)
	 GROUP BY e.ni, e.i, date_trunc('hour', e.t, 'UTC')
	 ORDER BY e.ni, e.i, date_trunc('hour', e.t, 'UTC')
	ON CONFLICT ON CONSTRAINT ratelimit_rollups_pkey DO UPDATE
	   SET passed = r.passed + EXCLUDED.passed,
		   limited = r.limited + EXCLUDED.limited,
		   last_time = greatest(r.last_time, EXCLUDED.last_time);
END
$$;
COMMENT ON FUNCTION unkey._store_ratelimits(timestamptz[], double precision[], text[], text[], text[], text[], text[], boolean[], bigint[], bigint[], timestamptz[], bigint[]) IS 'private: write rate-limit events and roll them up per hour';

-- Drop the event partitions that lie wholly before now - retention; returns their names
CREATE FUNCTION unkey._apply_retention(now timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	keep interval := (SELECT s.retention FROM unkey.event_settings s);
	part record;
BEGIN
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
		EXECUTE format('DROP TABLE unkey.%I', part.relname);
		RETURN NEXT part.relname;
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
	DELETE FROM unkey.event_settings;
	IF retention IS NOT NULL THEN
		INSERT INTO unkey.event_settings (retention) VALUES (retention);
	END IF;
END
$$;
COMMENT ON FUNCTION unkey.unkey_set_retention(interval) IS 'keep raw events this long (whole days); the event writer drops older partitions; NULL keeps them forever';

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

-- Every rollup row, summed per bucket, key, identity and tag set, one column per outcome
CREATE VIEW unkey.verifications AS
SELECT r.granularity, r.bucket AS time, r.api_id, r.key_id, r.identity_id, r.external_id, r.tags,
	   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'VALID'), 0) AS valid,
	   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'NOT_FOUND'), 0) AS not_found,
	   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'FORBIDDEN'), 0) AS forbidden,
	   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'USAGE_EXCEEDED'), 0) AS usage_exceeded,
	   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'RATE_LIMITED'), 0) AS rate_limited,
	   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'DISABLED'), 0) AS disabled,
	   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'INSUFFICIENT_PERMISSIONS'), 0) AS insufficient_permissions,
	   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'EXPIRED'), 0) AS expired,
	   sum(r.count) AS total,
	   sum(r.spent_credits) AS spent_credits,
	   sum(r.latency_sum) / sum(r.count) AS latency_avg,
	   unkey._latency_quantile(unkey._latency_hist_sum(r.latency_hist), 0.75) AS latency_p75,
	   unkey._latency_quantile(unkey._latency_hist_sum(r.latency_hist), 0.99) AS latency_p99
  FROM unkey.verification_rollups r
 GROUP BY r.granularity, r.bucket, r.api_id, r.key_id, r.identity_id, r.external_id, r.tags;
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
SELECT v.key_id, max(v.api_id) AS api_id, sum(v.valid) AS valid, sum(v.forbidden) AS forbidden,
	   sum(v.usage_exceeded) AS usage_exceeded, sum(v.rate_limited) AS rate_limited, sum(v.disabled) AS disabled,
	   sum(v.insufficient_permissions) AS insufficient_permissions, sum(v.expired) AS expired,
	   sum(v.total) AS total, sum(v.spent_credits) AS spent_credits,
	   (SELECT max(r.last_time) FROM unkey.verification_rollups r
		 WHERE r.key_id = v.key_id AND r.granularity = 'month') AS last_used_at
  FROM unkey.verifications v
 WHERE v.granularity = 'month' AND v.key_id IS NOT NULL
 GROUP BY v.key_id;
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
 * Unkey's analytics.getVerifications, over the rollups: counts per outcome in
 * [start, end), grouped by any of key, identity, tag (each tag apart), tags
 * (the whole set) and one of hour, day or month.  A time series is gap-filled
 * with zero rows, for each group seen.  Buckets are UTC; start is rounded
 * down to the bucket (the hour when no time is grouped).
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
AS $$
DECLARE
	groups text[] := coalesce(group_by, '{}');
	unit text := (SELECT g FROM unnest(groups) g WHERE g IN ('hour', 'day', 'month') LIMIT 1);
	gran text := coalesce(unit, 'hour');
	stop timestamptz := coalesce("end", unkey.now());
	first timestamptz;
	by_key boolean := 'key' = ANY (groups);
	by_identity boolean := 'identity' = ANY (groups);
	by_tags boolean := 'tags' = ANY (groups);
	by_tag boolean := 'tag' = ANY (groups);
	sort_by text := coalesce(order_by, CASE WHEN unit IS NOT NULL THEN 'time' ELSE 'total' END);
	descending boolean;
BEGIN
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
	IF NOT EXISTS (SELECT FROM unkey.apis a WHERE a.id = unkey_get_verifications.api_id) THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	descending := coalesce("order" = 'desc', sort_by <> 'time');
	first := date_trunc(gran, start, 'UTC');
	-- a time series has one row per bucket and group: keep it to a size a dashboard can use
	IF unit IS NOT NULL AND extract(epoch FROM stop - first) / extract(epoch FROM ('1 ' || unit)::interval) > 10000 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('the range holds more than 10000 %s', unit || 's'),
							 'Group by a longer unit, or ask for a shorter range.'::text);
	END IF;

	RETURN QUERY
	-- straight from the rollups, one aggregation: through the verifications view it would be two
	WITH agg AS (
		SELECT CASE WHEN unit IS NOT NULL THEN r.bucket END AS t,
			   -- bytewise comparisons: the grouping sorts hundreds of thousands of ids
			   CASE WHEN by_key THEN r.key_id END COLLATE "C" AS k,
			   CASE WHEN by_identity THEN r.identity_id END COLLATE "C" AS i,
			   CASE WHEN by_identity THEN r.external_id END COLLATE "C" AS x,
			   CASE WHEN by_tags THEN r.tags END AS g,
			   one.tag COLLATE "C" AS tg,
			   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'VALID'), 0)::bigint AS valid,
			   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'NOT_FOUND'), 0)::bigint AS not_found,
			   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'FORBIDDEN'), 0)::bigint AS forbidden,
			   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'USAGE_EXCEEDED'), 0)::bigint AS usage_exceeded,
			   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'RATE_LIMITED'), 0)::bigint AS rate_limited,
			   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'DISABLED'), 0)::bigint AS disabled,
			   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'INSUFFICIENT_PERMISSIONS'), 0)::bigint AS insufficient_permissions,
			   coalesce(sum(r.count) FILTER (WHERE r.outcome = 'EXPIRED'), 0)::bigint AS expired,
			   sum(r.count)::bigint AS total
		  FROM unkey.verification_rollups r
		  LEFT JOIN LATERAL unnest(CASE WHEN by_tag THEN r.tags END) AS one(tag) ON true
		 WHERE r.api_id = unkey_get_verifications.api_id AND r.granularity = gran
		   AND r.bucket >= first AND r.bucket < stop
		   AND (unkey_get_verifications.key_id IS NULL OR r.key_id = unkey_get_verifications.key_id)
		   AND (unkey_get_verifications.external_id IS NULL OR r.external_id = unkey_get_verifications.external_id)
		   AND (unkey_get_verifications.tags IS NULL OR r.tags @> unkey_get_verifications.tags)
		 GROUP BY 1, 2, 3, 4, 5, 6
	), grid AS (
		-- every bucket for every group seen; for a time series alone, every bucket
		SELECT s.t, d.k, d.i, d.x, d.g, d.tg
		  -- stepped in UTC wall time, so days and months do not follow the session's time zone
		  FROM (SELECT w AT TIME ZONE 'UTC' AS t
				  FROM generate_series(first AT TIME ZONE 'UTC', (stop - interval '1 microsecond') AT TIME ZONE 'UTC',
									   ('1 ' || unit)::interval) AS w) AS s,
			   (SELECT a.k, a.i, a.x, a.g, a.tg FROM agg a
				UNION
				SELECT NULL, NULL, NULL, NULL, NULL WHERE NOT (by_key OR by_identity OR by_tags OR by_tag)) AS d
		 WHERE unit IS NOT NULL
	), rows AS (
		SELECT a.* FROM agg a
		UNION ALL
		SELECT gr.t, gr.k, gr.i, gr.x, gr.g, gr.tg, 0, 0, 0, 0, 0, 0, 0, 0, 0
		  FROM grid gr
		 WHERE NOT EXISTS (SELECT FROM agg a
							WHERE a.t = gr.t AND coalesce(a.k, '') = coalesce(gr.k, '')
							  AND coalesce(a.i, '') = coalesce(gr.i, '') AND coalesce(a.tg, '') = coalesce(gr.tg, '')
							  AND coalesce(a.g, '{NULL}') = coalesce(gr.g, '{NULL}'))
	), sorted AS (
		SELECT rw.*, CASE sort_by
						 WHEN 'time' THEN extract(epoch FROM rw.t)
						 WHEN 'total' THEN rw.total WHEN 'valid' THEN rw.valid
						 WHEN 'not_found' THEN rw.not_found WHEN 'forbidden' THEN rw.forbidden
						 WHEN 'usage_exceeded' THEN rw.usage_exceeded WHEN 'rate_limited' THEN rw.rate_limited
						 WHEN 'disabled' THEN rw.disabled WHEN 'insufficient_permissions' THEN rw.insufficient_permissions
						 ELSE rw.expired END AS sort_value
		  FROM rows rw
	)
	SELECT st.t, st.k, st.i, st.x, st.g, st.tg, st.valid, st.not_found, st.forbidden, st.usage_exceeded,
		   st.rate_limited, st.disabled, st.insufficient_permissions, st.expired, st.total
	  FROM sorted st
	 ORDER BY CASE WHEN descending THEN st.sort_value END DESC,
			  CASE WHEN NOT descending THEN st.sort_value END ASC,
			  st.t, st.k COLLATE "C", st.i COLLATE "C", st.g::text COLLATE "C", st.tg COLLATE "C"
	 LIMIT "limit";
END
$$;
COMMENT ON FUNCTION unkey.unkey_get_verifications(text, timestamptz, timestamptz, text[], text, text, text[], text, text, integer) IS 'verification counts per outcome, grouped and gap-filled, as Unkey''s analytics.getVerifications';
