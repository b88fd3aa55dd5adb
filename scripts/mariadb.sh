#!/usr/bin/env bash
# Start / stop a private MariaDB for tests and the demo: its own port, data dir
# and socket, never the machine's shared instance.
#   scripts/mariadb.sh start|stop|status
# Env: SQLWARDEN_MARIADB_PORT (13306), SQLWARDEN_MARIADB_DIR (/tmp/sqlwarden-mariadb)
# performance_schema is on: tests read session_connect_attrs and the processlist
# as the server sees them. An instance started before that needs stop + start.
set -euo pipefail
PORT=${SQLWARDEN_MARIADB_PORT:-13306}
DIR=${SQLWARDEN_MARIADB_DIR:-/tmp/sqlwarden-mariadb}
DATA=$DIR/data
SOCK=$DIR/mysqld.sock
PIDF=$DIR/mysqld.pid
LOG=$DIR/mysqld.log

ping() { mariadb-admin --protocol=socket -S "$SOCK" -uroot ping >/dev/null 2>&1; }

ensure_installed() {
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    "$(dirname "$0")/install-deps.sh" mariadb
  fi
}

start() {
  ensure_installed
  mkdir -p "$DIR"
  if ping; then echo "mariadb: already running on 127.0.0.1:$PORT ($DIR)"; return 0; fi
  if [ ! -d "$DATA/mysql" ]; then
    rm -rf "$DATA"; mkdir -p "$DATA"
    mariadb-install-db --no-defaults --user=root --datadir="$DATA" --auth-root-authentication-method=normal \
      --skip-test-db >"$DIR/install.log" 2>&1 || { cat "$DIR/install.log"; exit 1; }
  fi
  # The general log (tests read it) only grows; start each run with a fresh one.
  if [ -f "$DIR/general.log" ] && [ "$(stat -c %s "$DIR/general.log")" -gt $((128 << 20)) ]; then
    rm -f "$DIR/general.log"
  fi
  # --user=root: tests run as root in CI; the instance is private to this data dir.
  nohup /usr/sbin/mariadbd --no-defaults --user=root --datadir="$DATA" --socket="$SOCK" \
    --pid-file="$PIDF" --port="$PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --general-log=1 --general-log-file="$DIR/general.log" --max-allowed-packet=256M \
    --max-connections=3000 --innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=2 \
    --performance-schema=ON --performance-schema-session-connect-attrs-size=16384 \
    --log-error="$LOG" >/dev/null 2>&1 &
  for _ in $(seq 1 200); do
    if ping; then break; fi
    sleep 0.1
  done
  ping || { echo "mariadb: did not start; log:"; tail -n 30 "$LOG"; exit 1; }
  mariadb --protocol=socket -S "$SOCK" -uroot -e "CREATE DATABASE IF NOT EXISTS test; \
    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
    CREATE USER IF NOT EXISTS 'warden'@'%' IDENTIFIED BY 'warden-pass'; GRANT ALL ON *.* TO 'warden'@'%'; \
    FLUSH PRIVILEGES;"
  echo "mariadb: running on 127.0.0.1:$PORT ($DIR)"
}

stop() {
  if [ -f "$PIDF" ]; then
    kill "$(cat "$PIDF")" 2>/dev/null || true
    for _ in $(seq 1 100); do ping || break; sleep 0.1; done
  fi
  echo "mariadb: stopped"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) ping && echo running || { echo stopped; exit 1; } ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
