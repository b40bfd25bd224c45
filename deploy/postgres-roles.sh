#!/bin/sh
# First start of the compose database (docker-entrypoint-initdb.d): the two roles and the
# database of README "Database roles". The superuser stays with this script and operators.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_password="$ROOMBOOK_OWNER_PASSWORD" -v app_password="$ROOMBOOK_APP_PASSWORD" <<'SQL'
CREATE ROLE roombook_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE roombook_app LOGIN PASSWORD :'app_password';
CREATE DATABASE roombook OWNER roombook_owner;
\connect roombook
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO roombook_owner;
SQL
