-- Who read whose consent state or evidence, and when (GDPR Art. 5(2)
-- accountability; services/consent/access.py). Identifiers are kept as their
-- pseudonyms only (HMAC-SHA256 under PSEUDONYM_KEY, shared/pseudonyms.py): the
-- record proves a read without holding the number it was about. `identifiers`
-- holds the pseudonym of every identifier of the person at the time, so "who read
-- X" finds the reads made by any of them.
CREATE TABLE IF NOT EXISTS consent.access_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL,
    principal text NOT NULL,
    scope text NOT NULL,
    subject text NOT NULL,
    identifiers text[] NOT NULL
);

CREATE INDEX IF NOT EXISTS access_log_identifiers ON consent.access_log USING gin (identifiers);
CREATE INDEX IF NOT EXISTS access_log_at ON consent.access_log (at);

-- The API appends; nobody but the owner changes or removes a record.
REVOKE UPDATE, DELETE, TRUNCATE ON consent.access_log FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'consent_api') THEN
        GRANT INSERT ON consent.access_log TO consent_api;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'consent_audit') THEN
        GRANT SELECT ON consent.access_log TO consent_audit;
    END IF;
END $$;
