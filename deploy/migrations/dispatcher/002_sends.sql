-- The optional sender (docs/sender.md): one row per request_id POSTed to the
-- WhatsApp Cloud API. The row is written as 'in_flight' before each attempt and
-- finished as 'sent' or 'failed'; a finished row is the idempotency record that
-- keeps a redelivered record from being POSTed again. An 'in_flight' row found
-- on redelivery means a sender stopped between a POST and its outcome: the
-- provider may or may not have accepted that message.
CREATE TABLE dispatcher.sends (
    request_id          text PRIMARY KEY,
    recipient           text,
    status              text        NOT NULL CHECK (status IN ('in_flight', 'sent', 'failed')),
    provider_message_id text,                   -- the response's messages[0].id (wamid....)
    http_status         integer,                -- of the last attempt; null: no response
    error               text,
    attempts            integer     NOT NULL DEFAULT 0,
    first_attempt_at    timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz             -- when the provider accepted it
);
-- Operators look for what did not go out.
CREATE INDEX sends_unfinished_idx ON dispatcher.sends (status, updated_at)
    WHERE status <> 'sent';
