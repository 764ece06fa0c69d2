#!/usr/bin/env bash
# Starts a Redis server for opsbot's multi-replica tests and prints its URL:
#
#   redis://:PASSWORD@127.0.0.1:PORT/0
#
# - Installs Debian's `redis-server` package with apt-get when it is missing.
# - Runs an instance of its own (it leaves Debian's redis-server service alone) on
#   127.0.0.1 only, port 6380 or $REDIS_PORT, with a password (requirepass) and no
#   persistence: it is a throwaway server for tests (locks and leases only).
# - Its configuration, password (root only) and log are in /var/lib/opsbot-redis.
# - Prints the URL on stdout (everything else goes to stderr), so
#       OPSBOT_TEST_REDIS_URL=$(bash scripts/redis.sh)
#   works. Idempotent: run it again, or with the server up, and it prints the same URL.
#
# Needs root (this is how CI and the development machines run). Elsewhere, point the
# tests at any Redis with OPSBOT_TEST_REDIS_URL instead.
# Stop it with: redis-cli -p PORT -a PASSWORD shutdown nosave
set -euo pipefail

PORT=${REDIS_PORT:-6380}
HOME_DIR=/var/lib/opsbot-redis

say() { echo "redis.sh: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (it installs and starts a Redis server). Run it with sudo, or set OPSBOT_TEST_REDIS_URL=redis://:PASS@HOST:PORT/0 to use a server you have."
case "$PORT" in ''|*[!0-9]*) die "REDIS_PORT must be a port number, not '$PORT'." ;; esac

exec 9>/tmp/opsbot-redis.lock
flock -w 600 9 || die "another scripts/redis.sh has held /tmp/opsbot-redis.lock for 10 minutes."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  say "installing Debian's redis-server package (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed: the Debian package registry must be reachable."
  # policy-rc.d keeps the package's own service from starting: this script runs its own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.opsbot
  chmod +x /usr/sbin/policy-rc.d.opsbot
  restore=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    cp /usr/sbin/policy-rc.d.opsbot /usr/sbin/policy-rc.d
    restore=1
  fi
  apt-get install -y -qq redis-server 9>&- >&2 || { [ "$restore" = 1 ] && rm -f /usr/sbin/policy-rc.d; die "apt-get install redis-server failed (see above)."; }
  [ "$restore" = 1 ] && rm -f /usr/sbin/policy-rc.d
  rm -f /usr/sbin/policy-rc.d.opsbot
fi

mkdir -p "$HOME_DIR"
chmod 700 "$HOME_DIR"
PASSWORD_FILE=$HOME_DIR/password
if [ ! -s "$PASSWORD_FILE" ]; then
  (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$PASSWORD_FILE")
fi
PASSWORD=$(cat "$PASSWORD_FILE")

CONF=$HOME_DIR/redis-$PORT.conf
(umask 077; cat > "$CONF" <<EOF
# Written by opsbot's scripts/redis.sh: a throwaway server for tests.
bind 127.0.0.1
protected-mode yes
port $PORT
requirepass $PASSWORD
daemonize yes
pidfile $HOME_DIR/redis-$PORT.pid
logfile $HOME_DIR/redis-$PORT.log
dir $HOME_DIR
save ""
appendonly no
EOF
)

ping() { REDISCLI_AUTH=$PASSWORD redis-cli --no-auth-warning -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

if ! ping; then
  say "starting redis-server on 127.0.0.1:$PORT"
  redis-server "$CONF" 9>&- >&2 || die "redis-server did not start. Is port $PORT taken? Set REDIS_PORT to another port."
  for _ in $(seq 1 60); do
    ping && break
    sleep 0.25
  done
  if ! ping; then
    tail -n 20 "$HOME_DIR/redis-$PORT.log" >&2 || true
    die "the server on 127.0.0.1:$PORT does not answer PING with its password after 15 s (log above; another Redis on that port? Set REDIS_PORT)."
  fi
fi
say "Redis is up on 127.0.0.1:$PORT"
echo "redis://:$PASSWORD@127.0.0.1:$PORT/0"
