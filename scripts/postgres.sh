#!/usr/bin/env bash
# Starts a PostgreSQL server for opsbot's tests and prints the URL of its test database:
#
#   postgresql://opsbot_test:PASSWORD@127.0.0.1:PORT/opsbot_test
#
# - Installs Debian's `postgresql` package with apt-get when it is missing.
# - Creates a cluster of its own, "opsbot", with pg_createcluster (it leaves any other
#   cluster, such as Debian's "main", alone), listening on 127.0.0.1 only, on port 5433
#   or $PGPORT. It is a throwaway cluster for tests: fsync is off.
# - Starts it with pg_ctlcluster, creates the role and database, checks that the URL
#   logs in, and prints the URL on stdout (everything else goes to stderr), so
#       OPSBOT_TEST_POSTGRES_URL=$(bash scripts/postgres.sh)
#   works. The password is random, made once and kept (root only) in the cluster's
#   configuration directory.
# - Idempotent: run it again, or with the server already up, and it prints the same URL.
#
# Needs root (this is how CI and the development machines run). Elsewhere, point the
# tests at any PostgreSQL with OPSBOT_TEST_POSTGRES_URL instead.
# Remove the cluster with: pg_dropcluster --stop VERSION opsbot
set -euo pipefail

PORT=${PGPORT:-5433}
CLUSTER=opsbot
ROLE=opsbot_test
DB=opsbot_test

say() { echo "postgres.sh: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (it installs and starts a PostgreSQL cluster). Run it with sudo, or set OPSBOT_TEST_POSTGRES_URL=postgresql://USER:PASS@HOST:PORT/DB to use a server you have."
case "$PORT" in ''|*[!0-9]*) die "PGPORT must be a port number, not '$PORT'." ;; esac

# Two test sessions starting at once must not race on creating the cluster.
# (Commands that may start a server get `9>&-`: a server inheriting the lock's file
# descriptor would hold the lock for as long as it runs.)
exec 9>/tmp/opsbot-postgres.lock
flock -w 600 9 || die "another scripts/postgres.sh has held /tmp/opsbot-postgres.lock for 10 minutes."

if ! command -v pg_createcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  say "installing Debian's postgresql package (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed: the Debian package registry must be reachable."
  apt-get install -y -qq postgresql 9>&- >&2 || die "apt-get install postgresql failed (see above)."
fi

# An existing "opsbot" cluster keeps its version; a new one gets the newest installed.
VERSION=$(pg_lsclusters -h 2>/dev/null | awk -v c="$CLUSTER" '$2 == c { print $1; exit }')
if [ -z "$VERSION" ]; then
  VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  [ -n "$VERSION" ] || die "no PostgreSQL server under /usr/lib/postgresql after installing."
  say "creating cluster $VERSION/$CLUSTER on port $PORT"
  pg_createcluster "$VERSION" "$CLUSTER" --port "$PORT" --start-conf manual \
      -- --auth-local=peer --auth-host=scram-sha-256 9>&- >&2
fi
CONF_DIR=/etc/postgresql/$VERSION/$CLUSTER

# Settings: loopback only, our port, and fast rather than durable (test data only).
# The port goes into postgresql.conf (pg_lsclusters and pg_ctlcluster read it there),
# the rest into conf.d, which postgresql.conf includes last.
changed=0
if [ "$(pg_conftool -s "$VERSION" "$CLUSTER" show port 2>/dev/null || true)" != "$PORT" ]; then
  pg_conftool "$VERSION" "$CLUSTER" set port "$PORT" >&2
  changed=1
fi
SETTINGS="# Written by opsbot's scripts/postgres.sh: a throwaway cluster for tests.
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB"
if [ "$(cat "$CONF_DIR/conf.d/opsbot.conf" 2>/dev/null || true)" != "$SETTINGS" ]; then
  printf '%s\n' "$SETTINGS" > "$CONF_DIR/conf.d/opsbot.conf"
  changed=1
fi

status=$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c { print $4 }')
case "$status" in
  online*)
    if [ "$changed" = 1 ]; then
      say "restarting $VERSION/$CLUSTER for the changed settings"
      pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" restart 9>&- >&2
    fi ;;
  *)
    say "starting $VERSION/$CLUSTER on 127.0.0.1:$PORT"
    if ! pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" start 9>&- >&2; then
      tail -n 20 "/var/log/postgresql/postgresql-$VERSION-$CLUSTER.log" >&2 || true
      die "the server did not start (log above). Is port $PORT taken? Set PGPORT to another port."
    fi ;;
esac

for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$PORT" && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$PORT" || die "the server on 127.0.0.1:$PORT does not accept connections after 30 s."

PASSWORD_FILE=$CONF_DIR/$ROLE.password
if [ ! -s "$PASSWORD_FILE" ]; then
  (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$PASSWORD_FILE")
fi
PASSWORD=$(cat "$PASSWORD_FILE")

# As the postgres superuser over the local socket (peer authentication).
(cd /tmp && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres \
    -v role="$ROLE" -v db="$DB" -v pass="$PASSWORD") >&2 <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" LOGIN PASSWORD :'pass';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL

URL="postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
PGPASSWORD=$PASSWORD psql -X -q -w -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d "$DB" -c 'SELECT 1' >/dev/null \
  || die "the test database does not accept its own login (see above)."
say "PostgreSQL $VERSION ($CLUSTER) is up on 127.0.0.1:$PORT"
echo "$URL"
