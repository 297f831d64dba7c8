#!/usr/bin/env bash
# docker compose: run once by the postgres image's entrypoint, as its superuser, on a
# new data volume (mounted into /docker-entrypoint-initdb.d). Makes the migration
# role `consent`, which owns the database and is no superuser, and the service roles
# of roles.sql (mounted at /etc/consent/roles.sql), with the passwords compose passes.
# The entrypoint sources a script that is not executable: no `set -u`, no exit.
set -eo pipefail

psql -v ON_ERROR_STOP=1 -qAtX --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v database="$POSTGRES_DB" -v owner_password="$CONSENT_OWNER_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE consent LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'consent')
\gexec
-- The owner runs the migrations and nothing else: no role or database to create.
ALTER ROLE consent WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
ALTER DATABASE :"database" OWNER TO consent;
SQL

psql -v ON_ERROR_STOP=1 -qAtX --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v consent_projector_login="$CONSENT_PROJECTOR_PASSWORD" \
    -v consent_api_login="$CONSENT_API_PASSWORD" \
    -v consent_dispatcher_login="$CONSENT_DISPATCHER_PASSWORD" \
    -v consent_audit_login="$CONSENT_AUDIT_PASSWORD" \
    -f /etc/consent/roles.sql
