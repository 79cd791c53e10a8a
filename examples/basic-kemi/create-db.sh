#!/usr/bin/env bash
# Creates the SQLite database of the basic-kemi example with Kamailio's `subscriber`
# and `address` (permissions, left empty) schemas, and adds subscribers:
#   create-db.sh [DB] [user:password ...]     (default: kamailio.sqlite alice:alice123 bob:bob123)
set -euo pipefail
cd "$(dirname "$0")"
db=${1:-kamailio.sqlite}
shift || true
users=("$@")
[[ ${#users[@]} -gt 0 ]] || users=(alice:alice123 bob:bob123)
command -v sqlite3 >/dev/null || { echo "sqlite3 is needed (apt-get install sqlite3)" >&2; exit 1; }
sqlite3 "$db" <<'SQL'
CREATE TABLE IF NOT EXISTS version (table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL,
  CONSTRAINT version_table_name_idx UNIQUE (table_name));
CREATE TABLE IF NOT EXISTS subscriber (id INTEGER PRIMARY KEY NOT NULL,
  username VARCHAR(64) DEFAULT '' NOT NULL, domain VARCHAR(64) DEFAULT '' NOT NULL,
  password VARCHAR(64) DEFAULT '' NOT NULL, ha1 VARCHAR(128) DEFAULT '' NOT NULL,
  ha1b VARCHAR(128) DEFAULT '' NOT NULL, CONSTRAINT subscriber_account_idx UNIQUE (username, domain));
CREATE INDEX IF NOT EXISTS subscriber_username_idx ON subscriber (username);
INSERT OR IGNORE INTO version (table_name, table_version) VALUES ('subscriber', 7);
CREATE TABLE IF NOT EXISTS address (id INTEGER PRIMARY KEY NOT NULL,
  grp INTEGER DEFAULT 1 NOT NULL, ip_addr VARCHAR(50) NOT NULL, mask INTEGER DEFAULT 32 NOT NULL,
  port SMALLINT DEFAULT 0 NOT NULL, tag VARCHAR(64));
INSERT OR IGNORE INTO version (table_name, table_version) VALUES ('address', 6);
SQL
for u in "${users[@]}"; do
  name=${u%%:*}; pass=${u#*:}
  sqlite3 "$db" "INSERT OR REPLACE INTO subscriber (username, domain, password) VALUES ('$name', '127.0.0.1', '$pass');"
done
echo "$db: subscribers: $(sqlite3 "$db" 'SELECT group_concat(username, " ") FROM subscriber;')"
