-- Least privilege (docs/security.md). The owner, the role that runs these
-- migrations, keeps every right; each service's group role (deploy/postgres/roles.sql)
-- gets what its own SQL uses and nothing more. The consent schema's grants live
-- here, the dispatcher's reads of it included; dispatcher/004 grants that schema.
--
-- A role that does not exist is skipped with a NOTICE: a database given by
-- DATABASE_URL alone, where every service connects as the owner, still migrates.
-- Every statement can run again, so a database migrated before its roles existed
-- gets them by applying this file once more as the owner (psql -f).
DO $$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(r, ', ') INTO missing
    FROM unnest(ARRAY['consent_projector', 'consent_api', 'consent_dispatcher', 'consent_audit']) AS r
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r);
    IF missing IS NOT NULL THEN
        RAISE NOTICE 'roles missing (%): their grants are skipped, their services connect as DATABASE_URL', missing;
    END IF;
END $$;

-- The log is append-only for everyone but the owner, whatever was granted before;
-- the trigger of 001 refuses the owner too, and only the owner can drop it.
REVOKE UPDATE, DELETE, TRUNCATE ON consent.events FROM PUBLIC;

DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT * FROM (VALUES
        -- The startup check (shared/db/migrated.py) reads what has been applied.
        ('consent_projector',  'GRANT SELECT ON public.schema_migrations TO %I'),
        ('consent_api',        'GRANT SELECT ON public.schema_migrations TO %I'),
        ('consent_dispatcher', 'GRANT SELECT ON public.schema_migrations TO %I'),
        ('consent_audit',      'GRANT SELECT ON public.schema_migrations TO %I'),
        ('consent_projector',  'GRANT USAGE ON SCHEMA consent TO %I'),
        ('consent_api',        'GRANT USAGE ON SCHEMA consent TO %I'),
        ('consent_dispatcher', 'GRANT USAGE ON SCHEMA consent TO %I'),
        ('consent_audit',      'GRANT USAGE ON SCHEMA consent TO %I'),
        -- The projector (services/consent/store.py): inserts events, upserts the
        -- states, records identity links and tracks its positions.
        ('consent_projector',  'GRANT SELECT, INSERT ON consent.events TO %I'),
        ('consent_projector',  'GRANT SELECT, INSERT, UPDATE ON consent.subjects TO %I'),
        ('consent_projector',  'GRANT SELECT, INSERT, UPDATE ON consent.tracking TO %I'),
        ('consent_projector',  'GRANT SELECT, INSERT ON consent.identity_links TO %I'),
        -- The query API: a subject's state and its history.
        ('consent_api',        'GRANT SELECT ON consent.subjects, consent.events TO %I'),
        -- The dispatcher's gate and fence: the states and the positions they reflect.
        ('consent_dispatcher', 'GRANT SELECT ON consent.subjects, consent.tracking TO %I'),
        -- The audit reads everything, tables added later included.
        ('consent_audit',      'GRANT SELECT ON ALL TABLES IN SCHEMA consent TO %I'),
        ('consent_audit',      'ALTER DEFAULT PRIVILEGES IN SCHEMA consent GRANT SELECT ON TABLES TO %I'),
        ('consent_projector',  'REVOKE UPDATE, DELETE, TRUNCATE ON consent.events FROM %I'),
        ('consent_api',        'REVOKE UPDATE, DELETE, TRUNCATE ON consent.events FROM %I'),
        ('consent_dispatcher', 'REVOKE UPDATE, DELETE, TRUNCATE ON consent.events FROM %I'),
        ('consent_audit',      'REVOKE UPDATE, DELETE, TRUNCATE ON consent.events FROM %I')
    ) AS grants(role, statement)
    LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = g.role) THEN
            EXECUTE format(g.statement, g.role);
        END IF;
    END LOOP;
END $$;
