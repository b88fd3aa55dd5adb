#!/usr/bin/env bash
# make soak: a steady mixed agent workload through sqlwarden for SOAK_TIME
# (default 10m) against the private MariaDB, sampled every SOAK_INTERVAL
# (5s): daemon RSS, goroutines, open fds, journal lag, p50/p99 latency.
# Writes the figures into the generated region of docs/soak.md (the
# hand-written parts stay) and draws docs/soak.png with gnuplot.
# Not part of `make test`. Only loopback addresses are used.
#   SOAK_TIME SOAK_INTERVAL SOAK_RATE (statements/s, 200) SOAK_OUT_DIR (docs)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PATH=$PATH:/usr/local/go/bin
BIN=${BIN:-bin/sqlwarden}
SOAK_TIME=${SOAK_TIME:-10m}
SOAK_INTERVAL=${SOAK_INTERVAL:-5s}
SOAK_RATE=${SOAK_RATE:-200}
OUT_DIR=${SOAK_OUT_DIR:-docs}
WORK=${SQLWARDEN_SOAK_DIR:-/tmp/sqlwarden-soak}
MPORT=${SQLWARDEN_MARIADB_PORT:-13306}
SOCK=${SQLWARDEN_MARIADB_DIR:-/tmp/sqlwarden-mariadb}/mysqld.sock
PORT_BASE=${SQLWARDEN_SOAK_PORT_BASE:-13421}
PORT=$PORT_BASE
ADMIN=127.0.0.1:$((PORT_BASE + 1))
TOKEN=soak-admin-token
rm -rf "$WORK"; mkdir -p "$WORK"

bash scripts/install-deps.sh demo soak >/dev/null
bash scripts/mariadb.sh start >/dev/null
mariadb --protocol=socket -S "$SOCK" -uroot <<'SQL'
DROP DATABASE IF EXISTS soak;
CREATE DATABASE soak;
CREATE TABLE soak.customers (id INT PRIMARY KEY, name VARCHAR(64), card VARCHAR(19), email VARCHAR(128), total DECIMAL(12,2));
INSERT INTO soak.customers SELECT seq, CONCAT('customer ', seq), CONCAT('41111111', LPAD(seq, 8, '0')), CONCAT('c', seq, '@example.com'), 0 FROM soak.seq_1_to_1000;
CREATE TABLE soak.events (id BIGINT AUTO_INCREMENT PRIMARY KEY, worker INT, v INT, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6));
SQL

cat > "$WORK/policy.yaml" <<'YAML'
default: allow
rules:
  - name: no-unbounded-writes
    match: statement.kind in ["DELETE", "UPDATE"] && !statement.has_where
    action: deny
    message: UPDATE and DELETE need a WHERE clause
  - name: ddl-needs-a-human
    match: statement.is_ddl
    action: approve
    message: schema changes need a human
masking:
  - name: cards
    columns: ["soak.customers.card"]
    strategy: partial
    keep: 4
  - name: emails
    columns: ["soak.*.email"]
    strategy: hash
YAML
{ daemon_config "127.0.0.1:$PORT" "$ADMIN" agent agent-secret soak-agent
  cat <<YAML
audit:
  dir: $WORK/audit
policy:
  file: $WORK/policy.yaml
  approvals:
    timeout: 1m
admin:
  token: $TOKEN
YAML
} > "$WORK/config.yaml"

[ -x "$BIN" ] || go build -o "$BIN" ./cmd/sqlwarden
"$BIN" run --config "$WORK/config.yaml" >"$WORK/daemon.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS "http://$ADMIN/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://$ADMIN/readyz" >/dev/null || { cat "$WORK/daemon.log"; exit 1; }

echo "soak: $SOAK_TIME at $SOAK_RATE statements/s through 127.0.0.1:$PORT (daemon pid $PID)"
go build -o "$WORK/soak" ./test/soak
rc=0
"$WORK/soak" -dsn "agent:agent-secret@tcp(127.0.0.1:$PORT)/soak?interpolateParams=false" -admin "http://$ADMIN" -token "$TOKEN" \
  -pid "$PID" -audit-dir "$WORK/audit" -duration "$SOAK_TIME" -interval "$SOAK_INTERVAL" -rate "$SOAK_RATE" \
  -csv "$WORK/soak.csv" -summary "$WORK/summary.md" || rc=$?
[ -f "$WORK/summary.md" ] || { echo "soak: no summary written"; tail -20 "$WORK/daemon.log"; exit 1; }

# The daemon's own view at the end: it must verify.
kill "$PID"; wait "$PID" 2>/dev/null || true
if "$BIN" audit verify --dir "$WORK/audit" >"$WORK/verify.txt" 2>&1; then v=passed; else v=FAILED; rc=1; fi
{ cat "$WORK/summary.md"; echo; echo "\`sqlwarden audit verify\` of the soak's journal afterwards: $v ($(grep -m1 -oE '[0-9]+ records' "$WORK/verify.txt" || echo '? records'))."; } > "$WORK/region.md"

gnuplot <<GP
set terminal pngcairo size 1000,1500 font ",10" noenhanced
set output "$OUT_DIR/soak.png"
set datafile separator ","
set key top left
set grid
set xlabel "time (s)"
set multiplot layout 6,1 title "sqlwarden soak: $SOAK_TIME, $SOAK_RATE statements/s"
set title "daemon RSS (MB)"; plot "$WORK/soak.csv" using 1:2 skip 1 with linespoints pt 7 ps 0.4 notitle
set title "goroutines"; plot "$WORK/soak.csv" using 1:3 skip 1 with linespoints pt 7 ps 0.4 notitle
set title "open fds"; plot "$WORK/soak.csv" using 1:4 skip 1 with linespoints pt 7 ps 0.4 notitle
set title "journal lag: statement sent to its record readable in the journal (ms)"; plot "$WORK/soak.csv" using 1:5 skip 1 with linespoints pt 7 ps 0.4 notitle
set title "statement latency (ms)"; plot "$WORK/soak.csv" using 1:6 skip 1 with linespoints pt 7 ps 0.4 title "p50", "" using 1:7 skip 1 with linespoints pt 7 ps 0.4 title "p99"
set title "statements per sample"; plot "$WORK/soak.csv" using 1:8 skip 1 with linespoints pt 7 ps 0.4 notitle
unset multiplot
GP
cp "$WORK/soak.csv" "$OUT_DIR/soak.csv"
cat "$WORK/region.md"
bash scripts/splice.sh "$OUT_DIR/soak.md" results < "$WORK/region.md"
echo "written to $OUT_DIR/soak.md, $OUT_DIR/soak.png, $OUT_DIR/soak.csv"
exit $rc
