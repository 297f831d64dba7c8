-- The data keys of crypto-shredding (docs/erasure.md, section 4): one per identifier,
-- keyed by its pseudonym (HMAC-SHA256 under ERASURE_INDEX_KEY, so the table holds no
-- number), wrapped (AES key wrap, RFC 3394) under the master key master_key_id, which
-- configuration holds and this database never does. Deleting a row erases whatever
-- was sealed under its key, in every copy of the ledgers (shared/erasure/).
CREATE TABLE IF NOT EXISTS consent.data_keys (
    pseudonym text PRIMARY KEY,
    master_key_id text NOT NULL,
    wrapped_key bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- No index on master_key_id: every insert would pay for it, and only the rotation,
-- an operator's rare command, looks keys up by it.

-- Deleting keys is the erasure job's and rewrapping them the rotation's: both run as
-- the owner until the erasure job has a role of its own, so no service role may
-- update, delete or truncate a key. The projector creates keys on first sight; the
-- API will open sealed fields to show a person their data; the audit reads all.
REVOKE UPDATE, DELETE, TRUNCATE ON consent.data_keys FROM PUBLIC;

DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT * FROM (VALUES
        ('consent_projector', 'GRANT SELECT, INSERT ON consent.data_keys TO %I'),
        ('consent_api',       'GRANT SELECT ON consent.data_keys TO %I'),
        ('consent_audit',     'GRANT SELECT ON consent.data_keys TO %I')
    ) AS grants(role, statement)
    LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = g.role) THEN
            EXECUTE format(g.statement, g.role);
        END IF;
    END LOOP;
END $$;
