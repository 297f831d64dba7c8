-- The dispatcher's own state (ARCHITECTURE.md section 2). A decision row is the
-- idempotency record of its request_id; its source position tells a redelivery
-- (same record: re-publish) from a duplicate (another record: publish nothing).
CREATE SCHEMA IF NOT EXISTS dispatcher;

CREATE TABLE dispatcher.decisions (
    request_id        text PRIMARY KEY,
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
    outbound_json     jsonb                  -- the Cloud API body, when dispatched
);
-- Frequency cap: dispatched messages per recipient over a rolling window.
CREATE INDEX decisions_recipient_dispatched_idx
    ON dispatcher.decisions (recipient, decided_at)
    WHERE decision = 'dispatched' AND reason = 'consented';

-- Clause 4.3: one confirmation per opt-out, ever.
CREATE TABLE dispatcher.confirmations (
    opt_out_event_id  text PRIMARY KEY,
    request_id        text        NOT NULL,
    dispatched_at     timestamptz NOT NULL
);
