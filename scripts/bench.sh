#!/usr/bin/env bash
# make bench: sysbench point-select and read-only, text and prepared, at 1 and 8
# threads — direct to MariaDB, through HAProxy in TCP mode (the reference relay),
# through sqlwarden explicitly, through sqlwarden via the eBPF redirect, and
# through sqlwarden with per-identity limits: limits-off (the built-in policy
# plus an empty limits section) and limits-on (every limit set, none firing) —
# then audit throughput, the memory of 1,000 idle connections and the Go
# benchmarks of the per-statement pipeline.
# Each figure is the median of BENCH_RUNS (default 3, at least 3) runs; the
# targets of one configuration run in turn, in a rotating order, so drift of a
# shared machine spreads over all of them. Prints the table and writes it into
# the generated regions of docs/bench.md (scripts/splice.sh), keeping the
# hand-written analysis around them.
#   BENCH_TIME   seconds per sysbench run (5)
#   BENCH_RUNS   runs per figure (3)
#   BIN_BEFORE   another build of sqlwarden (say, main before a change): its
#                `sqlwarden-before` rows run in the same rotation as the
#                others, so a change is compared in one run, not across days
#   BENCH_QUICK=1  check the script: one configuration, 1 s runs, no Go
#                benchmarks, written to a copy under the work dir unless
#                BENCH_OUT is set
# Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
BIN=${BIN:-bin/sqlwarden}
QUICK=${BENCH_QUICK:-0}
TIME=${BENCH_TIME:-5}
RUNS=${BENCH_RUNS:-3}
WORK=${SQLWARDEN_BENCH_DIR:-/tmp/sqlwarden-bench}
MPORT=${SQLWARDEN_MARIADB_PORT:-13306}
SOCK=${SQLWARDEN_MARIADB_DIR:-/tmp/sqlwarden-mariadb}/mysqld.sock
PORT_BASE=${SQLWARDEN_BENCH_PORT_BASE:-13401}
HAPORT=$PORT_BASE
SWPORT=$((PORT_BASE + 1))
ADMIN=127.0.0.1:$((PORT_BASE + 2))
# limits-off and limits-on daemons: listen and admin ports after those.
declare -A LIMPORT=([limits-off]=$((PORT_BASE + 3)) [limits-on]=$((PORT_BASE + 5)))
BIN_BEFORE=${BIN_BEFORE:-}
BEFORE_PORT=$((PORT_BASE + 7)); BEFORE_ADMIN=127.0.0.1:$((PORT_BASE + 8))
OUT=${BENCH_OUT:-docs/bench.md}
workloads=(oltp_point_select oltp_read_only oltp_read_write); modes=(disable auto); threadsets=(1 8)
if [ "$QUICK" = 1 ]; then
  TIME=${BENCH_TIME:-1}
  workloads=(oltp_point_select); modes=(disable); threadsets=(1)
  OUT=${BENCH_OUT:-$WORK/bench.md}
fi
if [ "$RUNS" -lt 3 ]; then echo "bench: BENCH_RUNS must be at least 3 (a median of fewer is one run)" >&2; exit 2; fi
rm -rf "$WORK"; mkdir -p "$WORK"
if [ "$QUICK" = 1 ] && [ -z "${BENCH_OUT:-}" ]; then cp docs/bench.md "$OUT"; fi

bash scripts/install-deps.sh demo bench >/dev/null
bash scripts/mariadb.sh start >/dev/null
mariadb --protocol=socket -S "$SOCK" -uroot -e "DROP DATABASE IF EXISTS sqlwarden_bench; CREATE DATABASE sqlwarden_bench"
sb_common=(--mysql-user=warden --mysql-password=warden-pass --mysql-db=sqlwarden_bench --tables=1 --table-size=10000)
sysbench oltp_read_only --mysql-host=127.0.0.1 --mysql-port="$MPORT" "${sb_common[@]}" prepare >/dev/null

# HAProxy, TCP mode: the reference L4 relay.
start_haproxy "$HAPORT" "$WORK"

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

{ daemon_config "127.0.0.1:$SWPORT" "$ADMIN" warden warden-pass sysbench
  cat <<YAML
$( [ "$EBPF" = 1 ] && printf '  static:\n    - name: sysbench-cgroup\n      cgroup: %s\n' "${CG#"$V2"}" )
audit:
  dir: $WORK/audit
$( [ "$EBPF" = 1 ] && printf 'redirect:\n  enabled: true\n  ports: [3306]\n  cgroup_root: %s\n  pin_dir: %s/sqlwarden\n' "$CG_ROOT" "$BPFFS" )
YAML
} > "$WORK/config.yaml"
"$BIN" run --config "$WORK/config.yaml" >"$WORK/daemon.log" 2>&1 &
SWPID=$!
BEFOREPID=""
if [ -n "$BIN_BEFORE" ]; then
  # The same configuration without the redirect, on its own ports and journal.
  sed -e "s#^listen: .*#listen: 127.0.0.1:$BEFORE_PORT#" -e "s#^admin_listen: .*#admin_listen: $BEFORE_ADMIN#" \
      -e "s#^  dir: $WORK/audit\$#  dir: $WORK/audit-before#" -e '/^redirect:/,$d' "$WORK/config.yaml" > "$WORK/before.config.yaml"
  "$BIN_BEFORE" run --config "$WORK/before.config.yaml" >"$WORK/daemon-before.log" 2>&1 &
  BEFOREPID=$!
fi

# The limits rows: the same daemon with a policy file — the built-in policy
# plus an empty limits section, or plus every limit set for the client (high
# enough never to fire).
"$BIN" policy default > "$WORK/limits-off.yaml"
printf 'limits: []\n' >> "$WORK/limits-off.yaml"
"$BIN" policy default > "$WORK/limits-on.yaml"
cat >> "$WORK/limits-on.yaml" <<'YAML'
limits:
  - name: bench
    max_rows: 1000000
    max_result_bytes: 1GiB
    statement_timeout: 60s
    max_statements_per_second: 1000000
    max_concurrent_statements: 1024
    max_connections: 1024
    read_only: true
    max_affected_rows: 1000000
YAML
LIMPIDS=()
for v in limits-off limits-on; do
  port=${LIMPORT[$v]}; admin=127.0.0.1:$((port + 1))
  { daemon_config "127.0.0.1:$port" "$admin" warden warden-pass sysbench
    cat <<YAML
audit:
  dir: $WORK/audit-$v
policy:
  file: $WORK/$v.yaml
YAML
  } > "$WORK/$v.config.yaml"
  "$BIN" run --config "$WORK/$v.config.yaml" >"$WORK/daemon-$v.log" 2>&1 &
  LIMPIDS+=($!)
done
cleanup() {
  for p in "${LIMPIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  kill "$SWPID" 2>/dev/null || true; wait "$SWPID" 2>/dev/null || true
  [ -n "$BEFOREPID" ] && { kill "$BEFOREPID" 2>/dev/null || true; wait "$BEFOREPID" 2>/dev/null || true; }
  [ -f "$WORK/haproxy.pid" ] && kill "$(cat "$WORK/haproxy.pid")" 2>/dev/null || true
  if [ "$EBPF" = 1 ]; then
    "$BIN" uninstall --config "$WORK/config.yaml" >/dev/null 2>&1 || true
    umount "$BPFFS" 2>/dev/null || true
    rmdir "$CG" "$CG_ROOT" 2>/dev/null || true
  fi
}
trap cleanup EXIT
admins=("$ADMIN" "127.0.0.1:$((LIMPORT[limits-off] + 1))" "127.0.0.1:$((LIMPORT[limits-on] + 1))")
[ -n "$BIN_BEFORE" ] && admins+=("$BEFORE_ADMIN")
for a in "${admins[@]}"; do
  for _ in $(seq 1 100); do curl -fsS "http://$a/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done
[ "$EBPF" = 1 ] && "$BIN" enroll --config "$WORK/config.yaml" --cgroup "$CG" >/dev/null

# run_sb TARGET TEST MODE THREADS → "qps avg_ms"
run_sb() {
  local target=$1 test=$2 mode=$3 threads=$4 host port pre=()
  case $target in
    direct) host=127.0.0.1; port=$MPORT ;;
    haproxy) host=127.0.0.1; port=$HAPORT ;;
    sqlwarden) host=127.0.0.1; port=$SWPORT ;;
    limits-off|limits-on) host=127.0.0.1; port=${LIMPORT[$target]} ;;
    sqlwarden-before) host=127.0.0.1; port=$BEFORE_PORT ;;
    sqlwarden-ebpf) host=127.0.0.77; port=3306; pre=(sh -c 'echo $$ > "$0/cgroup.procs" && shift && exec "$@"' "$CG" _) ;;
  esac
  # reads run without BEGIN/COMMIT; oltp_read_write runs its transactions
  # (without them its DELETE and INSERT of one id race between threads)
  local out trx=on
  [ "$test" = oltp_read_write ] && trx=off
  out=$("${pre[@]}" sysbench "$test" --mysql-host="$host" --mysql-port="$port" "${sb_common[@]}" \
        --db-ps-mode="$mode" --threads="$threads" --time="$TIME" --report-interval=0 --skip-trx="$trx" run 2>&1) || { echo "bench: sysbench $test via $target failed:" >&2; echo "$out" >&2; return 1; }
  local qps lat
  qps=$(echo "$out" | awk '/queries:/{gsub(/[(]/,"",$3); print $3; exit}')
  lat=$(echo "$out" | awk '/avg:/{print $2; exit}')
  echo "${qps:-0} ${lat:-0}"
}

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print 0; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

targets=(direct haproxy sqlwarden)
[ "$EBPF" = 1 ] && targets+=(sqlwarden-ebpf)
targets+=(limits-off limits-on)
[ -n "$BIN_BEFORE" ] && targets+=(sqlwarden-before)
{
echo "Run by \`make bench\` on $(date -u +%Y-%m-%dT%H:%MZ): $(nproc) cores ($(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ //')),"
echo "$(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(mariadbd --version | awk '{print $3}'), $(haproxy -v | head -1 | awk '{print $1, $2, $3}'),"
echo "sysbench $(sysbench --version | awk '{print $2}'), ${TIME}s per run, 1 table × 10,000 rows, client and servers on the same machine;"
echo "point selects and read-only statements each their own transaction (--skip-trx=on), oltp_read_write in its transactions."
echo "Each figure is the median of $RUNS runs; the targets of a row group ran in turn, in a rotating order."
echo "sqlwarden: default policy, audit \`sync: batch\` with its write-ahead ring (\`ring_dir: auto\`). QPS ratio and added average latency are against direct."
echo "limits-off: the default policy plus \`limits: []\`; limits-on: every per-identity limit set for the client, none firing"
echo "(read_only among them, so limits-on has no oltp_read_write rows);"
echo "× sqlwarden compares them with the plain sqlwarden row."
[ -n "$BIN_BEFORE" ] && echo "sqlwarden-before: $("$BIN_BEFORE" version 2>/dev/null | head -1 || echo "$BIN_BEFORE"), the same configuration as sqlwarden, run in the same rotation."
echo
echo "| workload | ps-mode | threads | target | QPS | × direct | × haproxy | × sqlwarden | avg ms | added µs |"
echo "|---|---|---|---|---:|---:|---:|---:|---:|---:|"
} > "$WORK/table.md"
for test in "${workloads[@]}"; do
  # limits-on sets read_only, which refuses the writes of oltp_read_write
  tgs=()
  for tg in "${targets[@]}"; do
    [ "$test" = oltp_read_write ] && [ "$tg" = limits-on ] && continue
    tgs+=("$tg")
  done
  for mode in "${modes[@]}"; do
    for threads in "${threadsets[@]}"; do
      declare -A qps=() lat=() qs=() ls=()
      n=${#tgs[@]}
      for ((r = 0; r < RUNS; r++)); do
        for ((i = 0; i < n; i++)); do
          tg=${tgs[$(((i + r) % n))]}
          res=$(run_sb "$tg" "$test" "$mode" "$threads") || exit 1
          read -r q l <<<"$res"
          qs[$tg]+="$q "; ls[$tg]+="$l "
        done
      done
      for tg in "${tgs[@]}"; do
        qps[$tg]=$(tr ' ' '\n' <<<"${qs[$tg]}" | grep . | median)
        lat[$tg]=$(tr ' ' '\n' <<<"${ls[$tg]}" | grep . | median)
        echo "bench: $test $mode $threads $tg: QPS ${qs[$tg]}-> ${qps[$tg]}; avg ms ${ls[$tg]}-> ${lat[$tg]}" >&2
      done
      for tg in "${tgs[@]}"; do
        awk -v w="$test" -v m="$mode" -v th="$threads" -v tg="$tg" -v q="${qps[$tg]}" -v dq="${qps[direct]}" -v hq="${qps[haproxy]}" \
            -v sq="${qps[sqlwarden]}" -v l="${lat[$tg]}" -v dl="${lat[direct]}" \
          'BEGIN{ printf "| %s | %s | %s | %s | %.0f | %.2f | %.2f | %.2f | %.3f | %+.0f |\n", w, (m=="disable"?"text":"prepared"), th, tg, q, (dq>0?q/dq:0), (hq>0?q/hq:0), (sq>0?q/sq:0), l, (l-dl)*1000 }' >> "$WORK/table.md"
      done
      unset qps lat qs ls
    done
  done
done
cat "$WORK/table.md"
bash scripts/splice.sh "$OUT" table < "$WORK/table.md"

# Audit throughput (durable records per second, per sync mode) and idle-connection memory.
if [ "$QUICK" != 1 ]; then
  {
  echo "## Audit journal: records per second (16 concurrent appenders); a point select's two records"
  echo
  echo "BenchmarkStatementPair: the statement and outcome records of a prepared point select, as the daemon"
  echo "journals them by default (sync batch, the ring), from 4 sessions per core: CPU and bytes per statement (3 runs)."
  echo "BenchmarkEncodeStatementPair: their encoding alone."
  echo
  echo '```'
  go test -run '^$' -bench 'BenchmarkAppend' -benchtime 2s ./pkg/audit/ 2>&1 | grep -E '^Benchmark' || true
  go test -run '^$' -bench 'StatementPair' -benchtime 2s -count 3 ./pkg/audit/ 2>&1 | grep -E '^Benchmark' || true
  echo '```'
  echo
  echo "## Approvals: approve→proceed latency and decisions per second (memory store; NATS store, two nodes)"
  echo
  echo '```'
  go test -run '^$' -bench 'BenchmarkApproval' -benchtime 500x ./pkg/approval/ 2>&1 | grep -E '^Benchmark' || true
  echo '```'
  echo
  echo "## Memory with 1,000 idle connections through sqlwarden"
  echo
  echo '```'
  go test -run '^$' -bench 'BenchmarkIdleConnections' -benchtime 1x ./test/e2e/ 2>&1 | grep -E '^Benchmark' || true
  echo '```'
  echo
  echo "## What the eBPF redirect adds to connect(2): direct against enrolled (median ns per connect, 3 runs of 20,000)"
  echo
  echo '```'
  if [ "$(id -u)" = 0 ]; then
    go test -run '^$' -bench 'BenchmarkConnect' -benchtime 20000x -count 3 ./redirect/ 2>&1 | grep -E '^(Benchmark|--- FAIL|\s+bench_test)' || true
  else
    echo "not run: the redirect needs root (BPF, cgroups)"
  fi
  echo '```'
  } > "$WORK/micro.md"
  cat "$WORK/micro.md"
  bash scripts/splice.sh "$OUT" micro < "$WORK/micro.md"

  # The per-statement pipeline in-process (proxytest's fake backend over
  # net.Pipe, the daemon's wiring): three runs each, as measured.
  {
  echo "## The statement pipeline in-process: ns, CPU ns and allocations per statement"
  echo
  echo '```'
  go test -run '^$' -bench 'BenchmarkPipeline' -benchtime 1s -count 3 ./internal/daemon/ 2>&1 | grep -E '^Benchmark' || true
  go test -run '^$' -bench 'BenchmarkClassify' -benchtime 1s -count 3 ./pkg/statement/ 2>&1 | grep -E '^Benchmark' || true
  echo '```'
  } > "$WORK/pipeline.md"
  cat "$WORK/pipeline.md"
  bash scripts/splice.sh "$OUT" pipeline < "$WORK/pipeline.md"
fi
echo
echo "written to $OUT (the generated regions; the rest is kept)"
