-- Quiet hours (clause 6, docs/contract.md section 3): a request outside the
-- recipient's window gets a `deferred` decision row, replaced by its one final
-- decision once released. `source_topic` names the topic of the record the row
-- was decided from (null on rows older than the column: messages.requests.v1), so
-- that a release record is never taken for a redelivery of a request at the same
-- partition and offset.
ALTER TABLE dispatcher.decisions ADD COLUMN source_topic text;
ALTER TABLE dispatcher.decisions ADD COLUMN not_before timestamptz;

-- What waits, and since when it was handed to the gate again: the request as it
-- was received (its record value), released once `not_before` has passed. A
-- row released but not decided within a minute (a crash between the two) is
-- released again; the gate decides a request_id once, whatever the repeats.
CREATE TABLE dispatcher.deferred (
    request_id    text PRIMARY KEY,
    recipient     text        NOT NULL,
    not_before    timestamptz NOT NULL,
    request_json  jsonb       NOT NULL,
    deferred_at   timestamptz NOT NULL,
    released_at   timestamptz
);
CREATE INDEX deferred_due_idx ON dispatcher.deferred (not_before);
