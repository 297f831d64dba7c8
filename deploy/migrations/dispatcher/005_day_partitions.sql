-- A retention horizon for the dispatcher's tables (docs/erasure.md section 7). At
-- 1,000 messages a second dispatcher.decisions gains 86 million rows a day, each with
-- the decision and the message body. decisions, sends and deferred become tables
-- partitioned by day (UTC) on decided_at, first_attempt_at and deferred_at: a day
-- past the horizon goes with one DROP TABLE, never a DELETE of millions of rows.
-- dispatcher.confirmations is left as it is, kept for ever: one small row per
-- opt-out (clause 4.3: one confirmation per opt-out, ever).
--
-- A partitioned table's unique keys must hold its partition key, so the primary
-- keys become (request_id, <day column>): they no longer make a request_id unique.
-- The dispatcher's writers take a transaction-scoped advisory lock on each
-- request_id before they look for it and insert (services/dispatcher/request_locks.py),
-- so one request_id still gets one row within the horizon, whichever instance
-- and whichever day. Each key's index leads with request_id: it is the lookup's
-- index, in every partition.
--
-- The rows that exist are moved: the old tables are renamed aside, the partitioned
-- ones created under the old names with every column and index, the partitions the
-- rows need created, the rows copied, the old tables dropped.

-- The day column of each partitioned table.
CREATE FUNCTION dispatcher.day_column(parent text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE parent
        WHEN 'decisions' THEN 'decided_at'
        WHEN 'sends' THEN 'first_attempt_at'
        WHEN 'deferred' THEN 'deferred_at'
    END
$$;

-- Creates dispatcher.<parent>_pYYYYMMDD for [day, day + 1) in UTC, unless it exists;
-- returns whether it did. Rows of that day written while the day had no partition
-- wait in <parent>_default: they move into it. The table is made apart and then
-- attached, which locks the parent in SHARE UPDATE EXCLUSIVE mode only: the gate
-- goes on reading and writing meanwhile.
CREATE FUNCTION dispatcher.create_day_partition(parent text, day date) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    day_column text := dispatcher.day_column(parent);
    child text := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
    lower_bound timestamptz := day::timestamp AT TIME ZONE 'UTC';
    upper_bound timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF day_column IS NULL THEN
        RAISE EXCEPTION 'dispatcher.% is not partitioned by day', parent;
    END IF;
    IF to_regclass(format('dispatcher.%I', child)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'CREATE TABLE dispatcher.%I (LIKE dispatcher.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
        child, parent);
    EXECUTE format(
        'WITH moved AS (DELETE FROM dispatcher.%I WHERE %I >= $1 AND %I < $2 RETURNING *)'
        ' INSERT INTO dispatcher.%I SELECT * FROM moved',
        parent || '_default', day_column, day_column, child)
        USING lower_bound, upper_bound;
    EXECUTE format(
        'ALTER TABLE dispatcher.%I ATTACH PARTITION dispatcher.%I FOR VALUES FROM (%L) TO (%L)',
        parent, child, lower_bound, upper_bound);
    RETURN true;
END $$;

-- The maintenance as of a given instant (the benchmark and the tests pass simulated
-- ones; the service role may only call maintain_partitions below, which passes now()):
-- - every day that has rows in a default partition gets its partition, so the
--   default partitions stay empty and creating a partition never scans many rows;
-- - today and the next `ahead_days` days get theirs, so that rows land in a day
--   partition even after maintenance failed for a while;
-- - a day wholly older than the horizon is dropped, except where it still holds a
--   request waiting for quiet hours (a `deferred` decision, a deferred row): the
--   release must find it, however long the window stays closed.
-- Returns a row per partition created, dropped, or kept past the horizon.
CREATE FUNCTION dispatcher.maintain_partitions_as_of(
    as_of timestamptz, horizon_days integer, ahead_days integer
) RETURNS TABLE (table_name text, partition_name text, action text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    parent text;
    day_column text;
    day date;
    today date := (as_of AT TIME ZONE 'UTC')::date;
    -- The last day whose whole span ends before as_of - horizon.
    last_past date := ((as_of - make_interval(days => horizon_days)) AT TIME ZONE 'UTC')::date - 1;
    old record;
    waiting boolean;
BEGIN
    IF horizon_days IS NULL OR horizon_days < 1 THEN
        RAISE EXCEPTION 'the horizon must be at least 1 day, not %', horizon_days;
    END IF;
    IF ahead_days IS NULL OR ahead_days < 1 OR ahead_days > 31 THEN
        RAISE EXCEPTION 'partitions are made 1 to 31 days ahead, not %', ahead_days;
    END IF;
    -- Two dispatchers maintaining at once: the second waits, then finds it done.
    PERFORM pg_advisory_xact_lock(1885434484, 0);  -- "part"
    FOREACH parent IN ARRAY ARRAY['decisions', 'sends', 'deferred'] LOOP
        day_column := dispatcher.day_column(parent);
        FOR day IN EXECUTE format(
            'SELECT DISTINCT (%I AT TIME ZONE ''UTC'')::date FROM dispatcher.%I ORDER BY 1',
            day_column, parent || '_default')
        LOOP
            IF dispatcher.create_day_partition(parent, day) THEN
                RETURN QUERY SELECT parent, format('%s_p%s', parent, to_char(day, 'YYYYMMDD')),
                    'created';
            END IF;
        END LOOP;
        FOR day IN SELECT today + n FROM generate_series(0, ahead_days) AS n
        LOOP
            IF dispatcher.create_day_partition(parent, day) THEN
                RETURN QUERY SELECT parent, format('%s_p%s', parent, to_char(day, 'YYYYMMDD')),
                    'created';
            END IF;
        END LOOP;
        FOR old IN
            SELECT c.relname::text AS name
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = format('dispatcher.%I', parent)::regclass
              AND c.relname ~ ('^' || parent || '_p[0-9]{8}$')
              AND to_date(right(c.relname, 8), 'YYYYMMDD') <= last_past
            ORDER BY c.relname
        LOOP
            waiting := false;
            IF parent = 'decisions' THEN
                EXECUTE format(
                    'SELECT EXISTS (SELECT FROM dispatcher.%I WHERE decision = ''deferred'')',
                    old.name) INTO waiting;
            ELSIF parent = 'deferred' THEN
                EXECUTE format('SELECT EXISTS (SELECT FROM dispatcher.%I)', old.name) INTO waiting;
            END IF;
            IF waiting THEN
                RETURN QUERY SELECT parent, old.name, 'kept';
            ELSE
                EXECUTE format('DROP TABLE dispatcher.%I', old.name);
                RETURN QUERY SELECT parent, old.name, 'dropped';
            END IF;
        END LOOP;
    END LOOP;
END $$;

-- What the dispatcher calls, at start and every hour: no DDL right of its own, and
-- no say over the clock. The lock timeout keeps it from queueing behind a long
-- reader (an operator's report) with the gate's statements queued behind it: it
-- fails instead, and the next round tries again.
CREATE FUNCTION dispatcher.maintain_partitions(horizon_days integer, ahead_days integer)
RETURNS TABLE (table_name text, partition_name text, action text)
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '3s'
AS $$
    SELECT * FROM dispatcher.maintain_partitions_as_of(now(), horizon_days, ahead_days)
$$;

REVOKE ALL ON FUNCTION dispatcher.day_column(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dispatcher.create_day_partition(text, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION dispatcher.maintain_partitions_as_of(timestamptz, integer, integer)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION dispatcher.maintain_partitions(integer, integer) FROM PUBLIC;

-- The old tables, aside; their indexes' names are taken by the new ones.
ALTER TABLE dispatcher.decisions RENAME TO decisions_unpartitioned;
ALTER INDEX dispatcher.decisions_pkey RENAME TO decisions_unpartitioned_pkey;
ALTER INDEX dispatcher.decisions_recipient_dispatched_idx
    RENAME TO decisions_unpartitioned_recipient_dispatched_idx;
ALTER TABLE dispatcher.sends RENAME TO sends_unpartitioned;
ALTER INDEX dispatcher.sends_pkey RENAME TO sends_unpartitioned_pkey;
ALTER INDEX dispatcher.sends_unfinished_idx RENAME TO sends_unpartitioned_unfinished_idx;
ALTER TABLE dispatcher.deferred RENAME TO deferred_unpartitioned;
ALTER INDEX dispatcher.deferred_pkey RENAME TO deferred_unpartitioned_pkey;
ALTER INDEX dispatcher.deferred_due_idx RENAME TO deferred_unpartitioned_due_idx;

-- The columns, comments and indexes of 001 to 003, keyed by day.
CREATE TABLE dispatcher.decisions (
    request_id        text        NOT NULL,
    recipient         text,
    purpose           text,
    decision          text        NOT NULL,
    reason            text        NOT NULL,
    consent_event_id  text,
    opt_out_event_id  text,
    decided_at        timestamptz NOT NULL,
    source_partition  integer     NOT NULL,
    source_offset     bigint      NOT NULL,
    decision_json     jsonb       NOT NULL,  -- exactly what was published
    outbound_json     jsonb,                 -- the Cloud API body, when dispatched
    source_topic      text,
    not_before        timestamptz,
    CONSTRAINT decisions_pkey PRIMARY KEY (request_id, decided_at)
) PARTITION BY RANGE (decided_at);
-- Frequency cap: dispatched messages per recipient over a rolling window.
CREATE INDEX decisions_recipient_dispatched_idx
    ON dispatcher.decisions (recipient, decided_at)
    WHERE decision = 'dispatched' AND reason = 'consented';
-- The maintenance keeps a day that still holds a request waiting for its release.
CREATE INDEX decisions_waiting_idx ON dispatcher.decisions (decided_at)
    WHERE decision = 'deferred';

CREATE TABLE dispatcher.sends (
    request_id          text        NOT NULL,
    recipient           text,
    status              text        NOT NULL CHECK (status IN ('in_flight', 'sent', 'failed')),
    provider_message_id text,                   -- the response's messages[0].id (wamid....)
    http_status         integer,                -- of the last attempt; null: no response
    error               text,
    attempts            integer     NOT NULL DEFAULT 0,
    first_attempt_at    timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,            -- when the provider accepted it
    CONSTRAINT sends_pkey PRIMARY KEY (request_id, first_attempt_at)
) PARTITION BY RANGE (first_attempt_at);
-- Operators look for what did not go out.
CREATE INDEX sends_unfinished_idx ON dispatcher.sends (status, updated_at)
    WHERE status <> 'sent';

CREATE TABLE dispatcher.deferred (
    request_id    text        NOT NULL,
    recipient     text        NOT NULL,
    not_before    timestamptz NOT NULL,
    request_json  jsonb       NOT NULL,
    deferred_at   timestamptz NOT NULL,
    released_at   timestamptz,
    CONSTRAINT deferred_pkey PRIMARY KEY (request_id, deferred_at)
) PARTITION BY RANGE (deferred_at);
CREATE INDEX deferred_due_idx ON dispatcher.deferred (not_before);

-- A row never fails for want of its day's partition: a day without one (the
-- maintenance stopped for longer than the days it makes ahead, a clock far off)
-- lands here, and the next maintenance moves it into a partition of its own.
CREATE TABLE dispatcher.decisions_default PARTITION OF dispatcher.decisions DEFAULT;
CREATE TABLE dispatcher.sends_default PARTITION OF dispatcher.sends DEFAULT;
CREATE TABLE dispatcher.deferred_default PARTITION OF dispatcher.deferred DEFAULT;

-- The days the existing rows need, and today's and the next two.
SELECT dispatcher.create_day_partition(parent, day)
FROM (
    SELECT DISTINCT 'decisions' AS parent, (decided_at AT TIME ZONE 'UTC')::date AS day
    FROM dispatcher.decisions_unpartitioned
    UNION
    SELECT DISTINCT 'sends', (first_attempt_at AT TIME ZONE 'UTC')::date
    FROM dispatcher.sends_unpartitioned
    UNION
    SELECT DISTINCT 'deferred', (deferred_at AT TIME ZONE 'UTC')::date
    FROM dispatcher.deferred_unpartitioned
    UNION
    SELECT t, (now() AT TIME ZONE 'UTC')::date + ahead
    FROM unnest(ARRAY['decisions', 'sends', 'deferred']) AS t, generate_series(0, 2) AS ahead
) AS needed
ORDER BY parent, day;

INSERT INTO dispatcher.decisions (request_id, recipient, purpose, decision, reason,
    consent_event_id, opt_out_event_id, decided_at, source_partition, source_offset,
    decision_json, outbound_json, source_topic, not_before)
SELECT request_id, recipient, purpose, decision, reason, consent_event_id, opt_out_event_id,
    decided_at, source_partition, source_offset, decision_json, outbound_json, source_topic,
    not_before
FROM dispatcher.decisions_unpartitioned;
INSERT INTO dispatcher.sends (request_id, recipient, status, provider_message_id, http_status,
    error, attempts, first_attempt_at, updated_at, sent_at)
SELECT request_id, recipient, status, provider_message_id, http_status, error, attempts,
    first_attempt_at, updated_at, sent_at
FROM dispatcher.sends_unpartitioned;
INSERT INTO dispatcher.deferred (request_id, recipient, not_before, request_json, deferred_at,
    released_at)
SELECT request_id, recipient, not_before, request_json, deferred_at, released_at
FROM dispatcher.deferred_unpartitioned;

DROP TABLE dispatcher.decisions_unpartitioned;
DROP TABLE dispatcher.sends_unpartitioned;
DROP TABLE dispatcher.deferred_unpartitioned;

-- The grants of 004 again, for the new tables, and the maintenance's: EXECUTE for
-- the dispatcher alone. The partitions need none of their own: the service reads
-- and writes through the parents, and the audit's default privileges cover every
-- table the owner creates in this schema.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT * FROM (VALUES
        ('consent_dispatcher', 'GRANT SELECT, INSERT, UPDATE ON dispatcher.decisions TO %I'),
        ('consent_dispatcher', 'GRANT SELECT, INSERT, UPDATE, DELETE ON dispatcher.deferred TO %I'),
        ('consent_dispatcher', 'GRANT SELECT, INSERT, UPDATE ON dispatcher.sends TO %I'),
        ('consent_dispatcher',
         'GRANT EXECUTE ON FUNCTION dispatcher.maintain_partitions(integer, integer) TO %I'),
        ('consent_audit',      'GRANT SELECT ON ALL TABLES IN SCHEMA dispatcher TO %I')
    ) AS grants(role, statement)
    LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = g.role) THEN
            EXECUTE format(g.statement, g.role);
        END IF;
    END LOOP;
END $$;
