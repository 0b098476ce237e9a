#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume: the service's login
# role `ledger` and its database. `ledger` is no superuser; it owns the database and may create
# roles (CREATEROLE), so its migrations create the restricted role `ledger_service` and make
# `ledger` a member; the service then runs every statement as `ledger_service` (SET ROLE),
# which owns nothing and may only read and append history (docs/OPERATIONS.md, "Key handling").
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v password="$(cat "${LEDGER_DB_PASSWORD_FILE:-/run/secrets/ledger_db_password}")" <<'SQL'
CREATE ROLE ledger LOGIN CREATEROLE PASSWORD :'password';
CREATE DATABASE ledger OWNER ledger;
REVOKE ALL ON DATABASE ledger FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE ledger TO ledger;
SQL
