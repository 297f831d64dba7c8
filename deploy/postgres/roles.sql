-- The service roles of docs/security.md, made by a superuser: deploy/local/postgres.sh
-- start (every start, on a new or an existing cluster) and, under docker compose,
-- deploy/postgres/init-roles.sh. Safe to run again: it creates what is missing and
-- sets the passwords it is given.
--
-- A group role (NOLOGIN) per service carries the grants, which the migrations give
-- (deploy/migrations/*/004_service_roles.sql); a login role per service is a member
-- of its group, so an operator can add logins of their own (GRANT consent_api TO ...)
-- without touching a grant. None of them owns anything: the migration role does.
--
-- psql variables, one per login role, named after it: its password (URL-safe).
--   psql -v consent_projector_login=... -v consent_api_login=...
--        -v consent_dispatcher_login=... -v consent_audit_login=... -f roles.sql

SELECT format('CREATE ROLE %I NOLOGIN', g)
FROM unnest(ARRAY['consent_projector', 'consent_api', 'consent_dispatcher', 'consent_audit']) AS g
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = g)
\gexec

SELECT format('CREATE ROLE %I LOGIN', l)
FROM unnest(ARRAY['consent_projector_login', 'consent_api_login',
                  'consent_dispatcher_login', 'consent_audit_login']) AS l
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = l)
\gexec

-- Only the membership: the login never creates roles, databases or anything that
-- would outlive it.
ALTER ROLE consent_projector_login WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE
    PASSWORD :'consent_projector_login';
ALTER ROLE consent_api_login WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE
    PASSWORD :'consent_api_login';
ALTER ROLE consent_dispatcher_login WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE
    PASSWORD :'consent_dispatcher_login';
ALTER ROLE consent_audit_login WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE
    PASSWORD :'consent_audit_login';

SELECT format('GRANT %I TO %I', m.grp, m.login)
FROM (VALUES ('consent_projector', 'consent_projector_login'),
             ('consent_api', 'consent_api_login'),
             ('consent_dispatcher', 'consent_dispatcher_login'),
             ('consent_audit', 'consent_audit_login')) AS m(grp, login)
WHERE NOT pg_has_role(m.login, m.grp, 'MEMBER')
\gexec
