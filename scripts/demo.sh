#!/usr/bin/env bash
# make demo: the main job end to end on a fresh machine.
#  - a private MariaDB with a small shop database,
#  - sqlwarden with an embedded demo config (guardrails + masking),
#  - an unmodified `mariadb` client: explicitly through the proxy, and (as root
#    with eBPF) transparently, from an enrolled cgroup with the database's own address,
#  - then the audit trail, verified.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/sqlwarden}
WORK=${SQLWARDEN_DEMO_DIR:-/tmp/sqlwarden-demo}
PORT=${SQLWARDEN_DEMO_PORT:-15306}
ADMIN=${SQLWARDEN_DEMO_ADMIN:-127.0.0.1:19309}
MARIA_PORT=${SQLWARDEN_MARIADB_PORT:-13306}
SOCK=${SQLWARDEN_MARIADB_DIR:-/tmp/sqlwarden-mariadb}/mysqld.sock

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
rm -rf "$WORK"; mkdir -p "$WORK"

say "private MariaDB on 127.0.0.1:$MARIA_PORT"
bash scripts/mariadb.sh start
mariadb --protocol=socket -S "$SOCK" -uroot <<'SQL'
DROP DATABASE IF EXISTS shop;
CREATE DATABASE shop;
CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128), card_number VARCHAR(19), salary DECIMAL(10,2));
INSERT INTO shop.customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '4111111111111111', 120000.00),
  (2, 'Alan Turing', 'alan@example.org', '5500005555555559', 98000.50),
  (3, 'Grace Hopper', 'grace@example.net', '340000000000009', 134500.00);
SQL

CG_REL=""
CAN_REDIRECT=0
if [ "$(id -u)" = 0 ] && [ -d /sys/fs/cgroup ]; then
  V2=$(awk '$3=="cgroup2"{print $2; exit}' /proc/mounts)
  if [ -n "$V2" ]; then CAN_REDIRECT=1; CG_ROOT="$V2/sqlwarden-demo"; CG="$CG_ROOT/agent"; CG_REL="/sqlwarden-demo/agent"; fi
fi

cat > "$WORK/policy.yaml" <<'YAML'
default: allow
rules:
  - name: no-unbounded-writes
    match: statement.kind in ["DELETE", "UPDATE"] && !statement.has_where
    action: deny
    message: UPDATE and DELETE need a WHERE clause
  - name: no-drop
    match: statement.kind in ["DROP_TABLE", "DROP_DATABASE", "TRUNCATE"]
    action: deny
    message: dropping data is not something an agent does
  - name: ddl-needs-a-human
    match: statement.is_ddl
    action: approve
    message: schema changes need a human
masking:
  - name: cards
    columns: ["shop.customers.card_number"]
    strategy: partial
    keep: 4
  - name: emails
    columns: ["shop.*.email"]
    strategy: hash
YAML

cat > "$WORK/config.yaml" <<YAML
listen: 127.0.0.1:$PORT
admin_listen: $ADMIN
backends:
  - name: default
    address: 127.0.0.1:$MARIA_PORT
    user: warden
    password: warden-pass
identities:
  clients:
    - user: agent
      password: agent-secret
      name: demo-agent
$( [ "$CAN_REDIRECT" = 1 ] && printf '  static:\n    - name: demo-agent-cgroup\n      cgroup: %s\n' "$CG_REL" )
audit:
  dir: $WORK/audit
policy:
  file: $WORK/policy.yaml
  approvals:
    timeout: 2m
admin:
  token: demo-approver-token
$( [ "$CAN_REDIRECT" = 1 ] && printf 'redirect:\n  enabled: true\n  ports: [3306]\n  cgroup_root: %s\n  pin_dir: %s\n' "$CG_ROOT" "/sys/fs/bpf/sqlwarden-demo" )
YAML

cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  if [ "$CAN_REDIRECT" = 1 ]; then
    "$BIN" uninstall --config "$WORK/config.yaml" >/dev/null 2>&1 || true
    for d in "$CG" "$CG_ROOT"; do
      [ -d "$d" ] && { while read -r p; do echo "$p" > "$V2/cgroup.procs" 2>/dev/null || true; done < "$d/cgroup.procs"; rmdir "$d" 2>/dev/null || true; }
    done
  fi
}
trap cleanup EXIT

if [ "$CAN_REDIRECT" = 1 ]; then
  mkdir -p "$CG"
  mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
fi

say "sqlwarden run --config $WORK/config.yaml"
"$BIN" run --config "$WORK/config.yaml" >"$WORK/daemon.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fsS "http://$ADMIN/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://$ADMIN/readyz" >/dev/null || { cat "$WORK/daemon.log"; exit 1; }

q() { echo "mariadb> $*"; mariadb -h 127.0.0.1 -P "$PORT" -u agent -pagent-secret --skip-ssl -D shop --table -e "$*" 2>&1 || true; }

say "an unmodified mariadb client, pointed at the proxy"
q "SELECT id, name, email, card_number, salary FROM customers"
q "SELECT name, CONCAT('card:', card_number) AS c FROM customers WHERE id = 1"
q "UPDATE customers SET salary = salary * 1.1 WHERE id = 2"
q "DELETE FROM customers"
q "SELECT COUNT(*) AS still_there FROM customers"

say "a schema change waits for a human; approved with the CLI"
q "ALTER TABLE customers ADD COLUMN note VARCHAR(64)" &
CLIENT=$!
for _ in $(seq 1 50); do
  ID=$("$BIN" approvals list --config "$WORK/config.yaml" --json 2>/dev/null | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -1)
  [ -n "$ID" ] && break; sleep 0.1
done
"$BIN" approvals list --config "$WORK/config.yaml"
"$BIN" approvals approve "$ID" --config "$WORK/config.yaml" --approver demo-dba --reason "planned migration"
wait "$CLIENT"
q "SELECT COUNT(*) AS note_column FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='customers' AND COLUMN_NAME='note'"

if [ "$CAN_REDIRECT" = 1 ]; then
  say "transparent: enroll a cgroup; its client dials 127.0.0.42:3306 (no DSN change, wrong password)"
  "$BIN" enroll --config "$WORK/config.yaml" --cgroup "$CG"
  sh -c 'echo $$ > "$0/cgroup.procs" && exec mariadb -h 127.0.0.42 -P 3306 -u agent -pwhatever --skip-ssl -D shop --table \
    -e "SELECT CURRENT_USER() AS db_login, name, card_number FROM customers WHERE id = 3"' "$CG" 2>&1 || true
  "$BIN" status --config "$WORK/config.yaml" | sed -n '1,12p'
else
  say "(skipping the transparent redirect: it needs root and cgroup v2)"
fi

say "sqlwarden audit tail --dir $WORK/audit"
sleep 0.3
"$BIN" audit tail --dir "$WORK/audit" -n 40
say "sqlwarden audit verify --dir $WORK/audit"
"$BIN" audit verify --dir "$WORK/audit" || true
