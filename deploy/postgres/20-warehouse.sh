#!/bin/sh
# The example warehouse that KPI jobs can query: a `warehouse` database with a small table, and
# `bizdevops_reader`, the least-privilege role a data source logs in as. The postgres image runs
# this once, as the bootstrap superuser, on an empty volume (docker-entrypoint-initdb.d).
# The role's SQL is what `python manage.py datasource_role --name bizdevops_reader --database
# warehouse` prints (a test keeps the two equal), with the password from the environment.
# The workers get WAREHOUSE_URL: a data source with url_env=WAREHOUSE_URL uses it.
set -eu

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE DATABASE warehouse;
-- Only the roles granted CONNECT below (and superusers) may connect; no TEMP for PUBLIC.
REVOKE ALL ON DATABASE warehouse FROM PUBLIC;
SQL

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname warehouse \
    -v reader_password="${WAREHOUSE_READER_PASSWORD:?set WAREHOUSE_READER_PASSWORD}" <<'SQL'
CREATE TABLE public.orders (
    id integer PRIMARY KEY,
    amount numeric(12, 2),
    channel text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.orders (id, amount, channel, created_at) VALUES
    (1, 10.00, 'card', now() - interval '3 hours'),
    (2, 20.50, 'card', now() - interval '2 hours'),
    (3, 7.25, 'cash', now() - interval '1 hour');

CREATE ROLE "bizdevops_reader" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT CONNECTION LIMIT 10 PASSWORD :'reader_password';
ALTER ROLE "bizdevops_reader" SET statement_timeout = E'60s';
ALTER ROLE "bizdevops_reader" SET idle_in_transaction_session_timeout = E'60s';
ALTER ROLE "bizdevops_reader" SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE "warehouse" TO "bizdevops_reader";
GRANT USAGE ON SCHEMA "public" TO "bizdevops_reader";
GRANT SELECT ON ALL TABLES IN SCHEMA "public" TO "bizdevops_reader";
SQL
