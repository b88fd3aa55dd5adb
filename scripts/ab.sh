#!/usr/bin/env bash
# ab.sh NAME=BINARY [NAME=BINARY ...]: compare sqlwarden builds (and HAProxy,
# and direct) with alternating sysbench runs, reporting for every run the
# QPS, the average latency and the CPU each process spent per query — the
# proxy's and MariaDB's user + system time from /proc/PID/stat, sysbench's
# from time(1), the whole machine's from /proc/stat — then the medians.
# On 2 shared cores the CPU per query moves far less with other load than
# QPS does; docs/bench.md's "levers" sections were measured with it.
#   AB_TEST     sysbench test (oltp_point_select)
#   AB_MODE     --db-ps-mode: disable (text) or auto (prepared) (disable)
#   AB_THREADS  sysbench threads (8)
#   AB_TIME     seconds per run (5)
#   AB_RUNS     rounds; each round runs every target once, in a rotating
#               order (3)
#   AB_SCHED    1: also record 2 s of the scheduler's events in each run
#               (perf) and report, through scripts/sched.awk, how much of the
#               CPUs' time was idle, how much of it beside another CPU's
#               queue of runnable tasks, and how long the proxy's and
#               MariaDB's threads waited to run after each wake-up (0)
# Each build runs with the same configuration as make bench's sqlwarden row
# (built-in policy, audit sync: batch) on its own port and journal. Only
# loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ $# -eq 0 ]; then
  echo "usage: scripts/ab.sh NAME=BINARY [NAME=BINARY ...]" >&2
  exit 2
fi
TEST=${AB_TEST:-oltp_point_select}; MODE=${AB_MODE:-disable}; THREADS=${AB_THREADS:-8}
# as make bench: each statement its own transaction, but oltp_read_write in
# its transactions (its deletes and inserts of one id collide without them)
TRX=on; [ "$TEST" = oltp_read_write ] && TRX=off
TIME=${AB_TIME:-5}; RUNS=${AB_RUNS:-3}; SCHED=${AB_SCHED:-0}
if [ "$SCHED" = 1 ] && [ "$TIME" -lt 4 ]; then
  echo "ab: AB_SCHED=1 records 2 s from the first second of each run: AB_TIME must be at least 4" >&2; exit 2
fi
WORK=${SQLWARDEN_AB_DIR:-/tmp/sqlwarden-ab}
MPORT=${SQLWARDEN_MARIADB_PORT:-13306}
SOCK=${SQLWARDEN_MARIADB_DIR:-/tmp/sqlwarden-mariadb}/mysqld.sock
PORT_BASE=${SQLWARDEN_AB_PORT_BASE:-13490}
rm -rf "$WORK"; mkdir -p "$WORK"

bash scripts/install-deps.sh bench >/dev/null
[ "$SCHED" = 1 ] && bash scripts/install-deps.sh profile >/dev/null
bash scripts/mariadb.sh start >/dev/null
MPID=$(cat "$(dirname "$SOCK")/mysqld.pid")
sb=(--mysql-user=warden --mysql-password=warden-pass --mysql-db=sqlwarden_bench --tables=1 --table-size=10000)
if ! mariadb --protocol=socket -S "$SOCK" -uroot -e 'SELECT 1 FROM sqlwarden_bench.sbtest1 LIMIT 1' >/dev/null 2>&1; then
  mariadb --protocol=socket -S "$SOCK" -uroot -e 'CREATE DATABASE IF NOT EXISTS sqlwarden_bench'
  sysbench oltp_read_only --mysql-host=127.0.0.1 --mysql-port="$MPORT" "${sb[@]}" prepare >/dev/null
fi

declare -A PORT PID
names=(direct haproxy)
PORT[direct]=$MPORT; PID[direct]=""
PORT[haproxy]=$PORT_BASE
start_haproxy "$PORT_BASE" "$WORK"
PID[haproxy]=$(cat "$WORK/haproxy.pid")
cleanup() {
  for n in "${names[@]}"; do
    [ -n "${PID[$n]:-}" ] && kill "${PID[$n]}" 2>/dev/null || true
  done
}
trap cleanup EXIT

port=$((PORT_BASE + 1))
for spec in "$@"; do
  n=${spec%%=*}; bin=${spec#*=}
  if [ "$n" = "$spec" ] || [ -n "${PORT[$n]:-}" ]; then
    echo "ab: '$spec': want a new NAME=BINARY" >&2; exit 2
  fi
  { daemon_config "127.0.0.1:$port" "127.0.0.1:$((port + 100))" warden warden-pass sysbench
    printf 'audit:\n  dir: %s\n' "$WORK/audit-$n"
  } > "$WORK/$n.yaml"
  "$bin" run --config "$WORK/$n.yaml" >"$WORK/$n.log" 2>&1 &
  PID[$n]=$!; PORT[$n]=$port; names+=("$n")
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$((port + 100))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  port=$((port + 1))
done

cpu() { if [ -z "$1" ]; then echo 0; else awk '{print $14 + $15}' "/proc/$1/stat"; fi; }
machine() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
tck=$(getconf CLK_TCK)
ncpu=$(nproc)
tids() { [ -n "$1" ] && ls "/proc/$1/task" | paste -sd, || true; }
# sched_start and sched_report bracket one run when AB_SCHED=1.
sched_start() {
  [ "$SCHED" = 1 ] || return 0
  { sleep 1; perf record -q -a -o "$WORK/sched.data" -e sched:sched_switch -e sched:sched_wakeup \
      -e sched:sched_migrate_task -- sleep 2; } >/dev/null 2>&1 &
  REC=$!
}
sched_report() {
  [ "$SCHED" = 1 ] || return 0
  wait "$REC"
  perf script -i "$WORK/sched.data" -F cpu,time,event,trace 2>/dev/null |
    awk -v ncpu="$ncpu" -v proxy="$(tids "$1")" -v mariadb="$(tids "$MPID")" -f scripts/sched.awk
}
echo "ab: $TEST, ps-mode $MODE, $THREADS threads, ${TIME}s per run, $RUNS rounds; CPU in µs per query"
declare -A rows
k=${#names[@]}
for ((r = 0; r < RUNS; r++)); do
  for ((i = 0; i < k; i++)); do
    n=${names[$(((i + r) % k))]}
    p0=$(cpu "${PID[$n]}"); m0=$(cpu "$MPID"); t0=$(machine)
    sched_start
    out=$(/usr/bin/time -f 'ab-sysbench-cpu %U %S' sysbench "$TEST" --mysql-host=127.0.0.1 --mysql-port="${PORT[$n]}" "${sb[@]}" \
          --db-ps-mode="$MODE" --threads="$THREADS" --time="$TIME" --report-interval=0 --skip-trx="$TRX" run 2>&1) \
      || { echo "ab: sysbench via $n failed:" >&2; echo "$out" >&2; exit 1; }
    p1=$(cpu "${PID[$n]}"); m1=$(cpu "$MPID"); t1=$(machine)
    sched=$(sched_report "${PID[$n]}")
    line=$(awk -v n="$n" -v tck="$tck" -v p=$((p1 - p0)) -v m=$((m1 - m0)) -v t=$((t1 - t0)) '
      /queries:/ && !q { q = $2; qps = $3; gsub(/[(]/, "", qps) }
      /avg:/ && !lat { lat = $2 }
      /ab-sysbench-cpu/ { sb = $2 + $3 }
      END { printf "%-12s qps %8.0f  avg ms %6.3f  proxy %6.1f  mariadb %6.1f  sysbench %6.1f  machine %6.1f\n",
              n, qps, lat, p / tck / q * 1e6, m / tck / q * 1e6, sb / q * 1e6, t / tck / q * 1e6 }' <<<"$out")
    [ -n "$sched" ] && line="$line  $sched"
    echo "$line"
    rows[$n]+="$line"$'\n'
  done
done
echo "ab: medians"
for n in "${names[@]}"; do
  printf '%s' "${rows[$n]}" | awk -v n="$n" '
    { qps[NR] = $3; lat[NR] = $6; px[NR] = $8; db[NR] = $10; sb[NR] = $12; mc[NR] = $14
      id[NR] = $16; bq[NR] = $18; wp[NR] = $22; wd[NR] = $24 }
    function med(a,   i, j, t, m) {
      m = NR; for (i = 1; i <= m; i++) s[i] = a[i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (s[j] < s[i]) { t = s[i]; s[i] = s[j]; s[j] = t }
      return m % 2 ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
    }
    END { printf "%-12s qps %8.0f  avg ms %6.3f  proxy %6.1f  mariadb %6.1f  sysbench %6.1f  machine %6.1f",
            n, med(qps), med(lat), med(px), med(db), med(sb), med(mc)
          if (NF >= 24) printf "  idle %4.1f  beside-queue %4.1f  wake µs proxy %5.1f mariadb %5.1f",
            med(id), med(bq), med(wp), med(wd)
          printf "\n" }'
done
