-- Least privilege (docs/security.md): the dispatcher's group role writes its own
-- schema only, and only as its SQL does (services/dispatcher/gate/, sender/): no
-- TRUNCATE, no DELETE but of the deferred rows a final decision ends. Its reads of
-- the consent schema are granted by consent/004. Roles that do not exist are
-- skipped (consent/004 says so with a NOTICE); the file can run again.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT * FROM (VALUES
        ('consent_dispatcher', 'GRANT USAGE ON SCHEMA dispatcher TO %I'),
        ('consent_audit',      'GRANT USAGE ON SCHEMA dispatcher TO %I'),
        ('consent_dispatcher', 'GRANT SELECT, INSERT, UPDATE ON dispatcher.decisions TO %I'),
        ('consent_dispatcher', 'GRANT SELECT, INSERT ON dispatcher.confirmations TO %I'),
        -- UPDATE also for the release's SELECT ... FOR UPDATE SKIP LOCKED.
        ('consent_dispatcher', 'GRANT SELECT, INSERT, UPDATE, DELETE ON dispatcher.deferred TO %I'),
        ('consent_dispatcher', 'GRANT SELECT, INSERT, UPDATE ON dispatcher.sends TO %I'),
        ('consent_audit',      'GRANT SELECT ON ALL TABLES IN SCHEMA dispatcher TO %I'),
        ('consent_audit',      'ALTER DEFAULT PRIVILEGES IN SCHEMA dispatcher GRANT SELECT ON TABLES TO %I')
    ) AS grants(role, statement)
    LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = g.role) THEN
            EXECUTE format(g.statement, g.role);
        END IF;
    END LOOP;
END $$;
