-- The order key (contract section 2: occurred_at, log_time, partition, offset) of
-- the latest event folded into each state. When every new event of a subject
-- sorts after it, the projector folds them onto the stored state instead of
-- reading and refolding the whole history. NULL (rows written before this
-- migration): unknown, so the next event refolds the history and sets it.
ALTER TABLE consent.subjects
    ADD COLUMN through_occurred_at timestamptz,
    ADD COLUMN through_log_time    timestamptz,
    ADD COLUMN through_partition   integer,
    ADD COLUMN through_offset      bigint;
