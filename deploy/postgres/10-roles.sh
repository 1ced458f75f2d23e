#!/bin/sh
# The two database roles of BizDevOps. The postgres image runs this once, as the bootstrap
# superuser (POSTGRES_USER), when it starts on an empty volume (docker-entrypoint-initdb.d).
#   owner   owns the database and its tables: `manage.py migrate` runs as this role.
#   runtime the web, worker and beat connect as this role. It owns nothing; migrate grants it
#           INSERT and SELECT on history tables, SELECT/INSERT/UPDATE/DELETE on the others
#           (DATABASE_RUNTIME_ROLE, bizdevops/history.py). Not being an owner or a superuser,
#           it can neither disable the history triggers nor set session_replication_role.
set -eu

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v db="$POSTGRES_DB" \
    -v owner="${BIZDEVOPS_OWNER_ROLE:-bizdevops_owner}" \
    -v owner_password="${BIZDEVOPS_OWNER_PASSWORD:?set BIZDEVOPS_OWNER_PASSWORD}" \
    -v runtime="${BIZDEVOPS_RUNTIME_ROLE:-bizdevops_app}" \
    -v runtime_password="${BIZDEVOPS_RUNTIME_PASSWORD:?set BIZDEVOPS_RUNTIME_PASSWORD}" <<'SQL'
CREATE ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'owner_password';
CREATE ROLE :"runtime" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'runtime_password';
-- On PostgreSQL 15 the database owner owns schema public (pg_database_owner) and is the only
-- one who may create in it.
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"runtime";
SQL
