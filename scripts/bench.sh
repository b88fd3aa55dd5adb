#!/usr/bin/env bash
# make bench: sysbench point-select and read-only, text and prepared, at 1 and 8
# threads — direct to MariaDB, through HAProxy in TCP mode (the reference relay),
# through sqlwarden explicitly, and through sqlwarden via the eBPF redirect —
# then audit throughput and the memory of 1,000 idle connections. Prints a
# table and writes it, with the machine it ran on, to docs/bench.md.
# Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/sqlwarden}
TIME=${BENCH_TIME:-5}
WORK=${SQLWARDEN_BENCH_DIR:-/tmp/sqlwarden-bench}
MPORT=${SQLWARDEN_MARIADB_PORT:-13306}
SOCK=${SQLWARDEN_MARIADB_DIR:-/tmp/sqlwarden-mariadb}/mysqld.sock
HAPORT=13401
SWPORT=13402
ADMIN=127.0.0.1:13403
OUT=${BENCH_OUT:-docs/bench.md}
rm -rf "$WORK"; mkdir -p "$WORK"

bash scripts/install-deps.sh bench >/dev/null
bash scripts/mariadb.sh start >/dev/null
mariadb --protocol=socket -S "$SOCK" -uroot -e "DROP DATABASE IF EXISTS sqlwarden_bench; CREATE DATABASE sqlwarden_bench"
sb_common=(--mysql-user=warden --mysql-password=warden-pass --mysql-db=sqlwarden_bench --tables=1 --table-size=10000)
sysbench oltp_read_only --mysql-host=127.0.0.1 --mysql-port="$MPORT" "${sb_common[@]}" prepare >/dev/null

# HAProxy, TCP mode: the reference L4 relay.
cat > "$WORK/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 1m
  timeout server 1m
listen mysql
  bind 127.0.0.1:$HAPORT
  server db 127.0.0.1:$MPORT
CFG
haproxy -f "$WORK/haproxy.cfg" -D -p "$WORK/haproxy.pid"

EBPF=0
if [ "$(id -u)" = 0 ]; then
  V2=$(awk '$3=="cgroup2"{print $2; exit}' /proc/mounts)
  [ -n "$V2" ] && EBPF=1
fi
CG_ROOT=""; CG=""
if [ "$EBPF" = 1 ]; then
  CG_ROOT="$V2/sqlwarden-bench"; CG="$CG_ROOT/sysbench"; mkdir -p "$CG"
  BPFFS="$WORK/bpffs"; mkdir -p "$BPFFS"; mount -t bpf bpf "$BPFFS"
fi

cat > "$WORK/config.yaml" <<YAML
listen: 127.0.0.1:$SWPORT
admin_listen: $ADMIN
log_level: warn
backends:
  - name: default
    address: 127.0.0.1:$MPORT
    user: warden
    password: warden-pass
identities:
  clients:
    - user: warden
      password: warden-pass
      name: sysbench
$( [ "$EBPF" = 1 ] && printf '  static:\n    - name: sysbench-cgroup\n      cgroup: %s\n' "${CG#"$V2"}" )
audit:
  dir: $WORK/audit
$( [ "$EBPF" = 1 ] && printf 'redirect:\n  enabled: true\n  ports: [3306]\n  cgroup_root: %s\n  pin_dir: %s/sqlwarden\n' "$CG_ROOT" "$BPFFS" )
YAML
"$BIN" run --config "$WORK/config.yaml" >"$WORK/daemon.log" 2>&1 &
SWPID=$!
cleanup() {
  kill "$SWPID" 2>/dev/null || true; wait "$SWPID" 2>/dev/null || true
  [ -f "$WORK/haproxy.pid" ] && kill "$(cat "$WORK/haproxy.pid")" 2>/dev/null || true
  if [ "$EBPF" = 1 ]; then
    "$BIN" uninstall --config "$WORK/config.yaml" >/dev/null 2>&1 || true
    umount "$BPFFS" 2>/dev/null || true
    rmdir "$CG" "$CG_ROOT" 2>/dev/null || true
  fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fsS "http://$ADMIN/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
[ "$EBPF" = 1 ] && "$BIN" enroll --config "$WORK/config.yaml" --cgroup "$CG" >/dev/null

# run_sb TARGET TEST MODE THREADS → "qps avg_ms"
run_sb() {
  local target=$1 test=$2 mode=$3 threads=$4 host port pre=()
  case $target in
    direct) host=127.0.0.1; port=$MPORT ;;
    haproxy) host=127.0.0.1; port=$HAPORT ;;
    sqlwarden) host=127.0.0.1; port=$SWPORT ;;
    sqlwarden-ebpf) host=127.0.0.77; port=3306; pre=(sh -c 'echo $$ > "$0/cgroup.procs" && shift && exec "$@"' "$CG" _) ;;
  esac
  local out
  out=$("${pre[@]}" sysbench "$test" --mysql-host="$host" --mysql-port="$port" "${sb_common[@]}" \
        --db-ps-mode="$mode" --threads="$threads" --time="$TIME" --report-interval=0 --skip-trx=on run 2>&1) || { echo "0 0"; return; }
  local qps lat
  qps=$(echo "$out" | awk '/queries:/{gsub(/[(]/,"",$3); print $3; exit}')
  lat=$(echo "$out" | awk '/avg:/{print $2; exit}')
  echo "${qps:-0} ${lat:-0}"
}

targets=(direct haproxy sqlwarden)
[ "$EBPF" = 1 ] && targets+=(sqlwarden-ebpf)
{
echo "# sqlwarden benchmarks"
echo
echo "Run by \`make bench\` on $(date -u +%Y-%m-%dT%H:%MZ): $(nproc) cores ($(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ //')),"
echo "$(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(mariadbd --version | awk '{print $3}'), $(haproxy -v | head -1 | awk '{print $1, $2, $3}'),"
echo "sysbench $(sysbench --version | awk '{print $2}'), ${TIME}s per run, 1 table × 10,000 rows, client and servers on the same machine."
echo "sqlwarden: default policy, audit \`sync: batch\`. QPS ratio and added average latency are against direct."
echo
echo "| workload | ps-mode | threads | target | QPS | × direct | × haproxy | avg ms | added µs |"
echo "|---|---|---|---|---:|---:|---:|---:|---:|"
} > "$WORK/table.md"
for test in oltp_point_select oltp_read_only; do
  for mode in disable auto; do
    for threads in 1 8; do
      declare -A qps=() lat=()
      for tg in "${targets[@]}"; do
        read -r q l < <(run_sb "$tg" "$test" "$mode" "$threads")
        qps[$tg]=$q; lat[$tg]=$l
      done
      for tg in "${targets[@]}"; do
        awk -v w="$test" -v m="$mode" -v th="$threads" -v tg="$tg" -v q="${qps[$tg]}" -v dq="${qps[direct]}" -v hq="${qps[haproxy]}" \
            -v l="${lat[$tg]}" -v dl="${lat[direct]}" \
          'BEGIN{ printf "| %s | %s | %s | %s | %.0f | %.2f | %.2f | %.3f | %+.0f |\n", w, (m=="disable"?"text":"prepared"), th, tg, q, (dq>0?q/dq:0), (hq>0?q/hq:0), l, (l-dl)*1000 }' >> "$WORK/table.md"
      done
      unset qps lat
    done
  done
done

# Audit throughput (durable records per second, per sync mode) and idle-connection memory.
{
echo
echo "## Audit journal: records per second (16 concurrent appenders)"
echo
echo '```'
go test -run '^$' -bench 'BenchmarkAppend' -benchtime 2s ./pkg/audit/ 2>&1 | grep -E '^Benchmark' || true
echo '```'
echo
echo "## Memory with 1,000 idle connections through sqlwarden"
echo
echo '```'
go test -run '^$' -bench 'BenchmarkIdleConnections' -benchtime 1x ./test/e2e/ 2>&1 | grep -E '^Benchmark' || true
echo '```'
} >> "$WORK/table.md"

cat "$WORK/table.md"
mkdir -p "$(dirname "$OUT")"
cp "$WORK/table.md" "$OUT"
echo
echo "written to $OUT"
