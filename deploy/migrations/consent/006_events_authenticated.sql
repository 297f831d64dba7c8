-- Whether an event's claim to come from WhatsApp is proved by its writer's signature
-- (shared/consent/authenticity.py). False only for a restriction taken unsigned: it
-- still stops messages, but an opt-out so taken gets no confirmation
-- (shared/dispatch/rules.py). The rows recorded before the column were accepted under
-- the rules of their time and keep counting as they did; a rebuild from the log
-- judges them again (EVENT_SIGNATURES_FROM marks a log written before signing).
-- A constant default adds the column without rewriting or updating a row, so the
-- append-only trigger is not involved; the table-level grants of 004 cover it.
ALTER TABLE consent.events ADD COLUMN IF NOT EXISTS authenticated boolean NOT NULL DEFAULT true;
