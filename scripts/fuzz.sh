#!/usr/bin/env bash
# make fuzz: run every Go fuzz target of the module for FUZZTIME each and
# write what ran (target, executions, corpus size, crashes) into the
# generated region of docs/fuzz.md (scripts/splice.sh); the hand-written
# parts of the file stay. A crashing input is written by Go to the target's
# testdata/fuzz/FuzzName/ directory, where it becomes a seed that
# `make test` runs: commit it with the fix. Exits non-zero after writing the
# report when any target crashed.
#   FUZZTIME   per target (20s; Go's -fuzztime syntax: 30s, 5m, 100000x)
#   FUZZ_OUT   report file (docs/fuzz.md)
#   FUZZ_ONLY  regexp: run only the targets whose name matches
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
FUZZTIME=${FUZZTIME:-20s}
OUT=${FUZZ_OUT:-docs/fuzz.md}
ONLY=${FUZZ_ONLY:-.}
WORK=$(mktemp -d /tmp/sqlwarden-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

rows=()
total=0 crashed=0 started=$(date -u +%Y-%m-%dT%H:%MZ) t0=$(date +%s)
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  rel=${dir#"$PWD"/}
  for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' | grep -E -- "$ONLY" || true); do
    log="$WORK/$f.log"
    echo "== $rel $f ($FUZZTIME)"
    before=$( (find "$dir/testdata/fuzz/$f" -type f 2>/dev/null || true) | wc -l)
    rc=0
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1 || rc=$?
    tail -3 "$log"
    after=$( (find "$dir/testdata/fuzz/$f" -type f 2>/dev/null || true) | wc -l)
    note=""
    # Go's fuzz coordinator can end a run with "context deadline exceeded"
    # when -fuzztime runs out while a worker is mid-execution: no input
    # fails, none is written. Such a run is run once more and both are
    # recorded; a failure that wrote an input is never retried.
    if [ "$rc" != 0 ] && [ "$after" = "$before" ] && grep -q 'context deadline exceeded' "$log"; then
      first=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | awk '{print $2}' || true)
      echo "!! $f: the fuzzer's deadline ended a run without a failing input (${first:-0} executions); running it again"
      cp "$log" "$log.first"
      rc=0
      go test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1 || rc=$?
      tail -3 "$log"
      note=" (a first run of ${first:-0} executions ended in the fuzzer's own deadline error, no input; not counted)"
    fi
    execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | awk '{print $2}' || true)
    corpus=$(grep -oE '\(total: [0-9]+\)' "$log" | tail -1 | tr -dc 0-9 || true)
    seeds=$( (find "$dir/testdata/fuzz/$f" -type f 2>/dev/null || true) | wc -l)
    crash="0"
    if [ "$rc" != 0 ]; then
      crashed=$((crashed + 1))
      input=$(grep -oE 'testdata/fuzz/[^ ]+' "$log" | tail -1 || true)
      if [ -n "$input" ]; then crash="1: $rel/$input"; else crash="1: no input written: $(grep -A1 -- '--- FAIL' "$log" | tail -1 | sed 's/^ *//;s/|/\\|/g' | cut -c1-120)"; fi
      echo "!! $f failed:"; grep -A3 -E -- '--- FAIL|panic' "$log" | head -20 || true
    fi
    total=$((total + ${execs:-0}))
    rows+=("| \`$rel\` | $f | ${execs:-0} | ${corpus:-?} | $seeds | $crash$note |")
  done
done
elapsed=$(($(date +%s) - t0))

{
  echo "Run by \`make fuzz\` (scripts/fuzz.sh) on $started with FUZZTIME=$FUZZTIME per target, $(nproc) cores"
  echo "($(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ //')), $(go version | awk '{print $3}'); ${elapsed}s in all."
  echo "**$(printf "%'d" "$total") executions** across ${#rows[@]} targets, $crashed crashed."
  echo
  echo "| package | target | executions | corpus (seeds + cached + new) | committed seeds | crashes |"
  echo "|---|---|---:|---:|---:|---|"
  printf '%s\n' "${rows[@]}"
} > "$WORK/results.md"
cat "$WORK/results.md"
bash scripts/splice.sh "$OUT" results < "$WORK/results.md"
echo "written to $OUT"
[ "$crashed" = 0 ]
