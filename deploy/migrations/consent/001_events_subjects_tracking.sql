-- The consent projection (ARCHITECTURE.md section 2). `events` is an append-only
-- copy of consent.events.v1; `subjects` is the fold of each subject's events;
-- `tracking` is the next offset to apply per partition, written in the same
-- transaction as the rows it covers.
CREATE SCHEMA IF NOT EXISTS consent;

CREATE TABLE consent.events (
    event_id     text PRIMARY KEY,
    subject      text        NOT NULL,
    type         text        NOT NULL,
    occurred_at  timestamptz NOT NULL,  -- clamped to log_time
    log_time     timestamptz NOT NULL,  -- the broker's LogAppendTime
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    clamped      boolean     NOT NULL DEFAULT false,
    payload      jsonb       NOT NULL,  -- the validated, normalised event
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_subject_idx ON consent.events (subject);
CREATE UNIQUE INDEX events_position_idx ON consent.events (topic, partition, "offset");

CREATE FUNCTION consent.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent.events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON consent.events
    FOR EACH ROW EXECUTE FUNCTION consent.refuse_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON consent.events
    FOR EACH STATEMENT EXECUTE FUNCTION consent.refuse_change();

CREATE TABLE consent.subjects (
    subject        text PRIMARY KEY,
    status         text        NOT NULL,
    state          jsonb       NOT NULL,  -- shared.consent.state.SubjectState
    last_event_id  text,
    version        integer     NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consent.tracking (
    topic        text    NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint  NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
