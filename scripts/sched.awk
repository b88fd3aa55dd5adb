# sched.awk: read `perf script -F cpu,time,event,trace` of the events
# sched:sched_switch, sched:sched_wakeup and sched:sched_migrate_task
# recorded on every CPU (perf record -a), and print on one line
#   idle          % of all CPU time no task ran
#   beside-queue  % of all CPU time a CPU idled while another CPU had a
#                 runnable task waiting in its queue (work the kernel did not
#                 move to the idle CPU)
#   wake          mean µs from a wake-up to running, for the threads listed
#                 in proxy= and mariadb= (comma-separated thread ids)
# -v ncpu=N proxy=TIDS mariadb=TIDS. scripts/ab.sh runs it with AB_SCHED=1.
function val(k) {
  if (!match($0, " " k "=[^ ]+")) return ""
  return substr($0, RSTART + length(k) + 2, RLENGTH - length(k) - 2)
}
function unqueue(p) { if (p in qcpu) { nq[qcpu[p]]--; delete qcpu[p] } }
function enqueue(p, c) { unqueue(p); qcpu[p] = c; nq[c]++ }
BEGIN {
  n = split(proxy, a, ","); for (i = 1; i <= n; i++) role[a[i]] = "proxy"
  n = split(mariadb, a, ","); for (i = 1; i <= n; i++) role[a[i]] = "mariadb"
  for (c = 0; c < ncpu; c++) curr[c] = -1
}
{
  cpu = substr($1, 2, length($1) - 2) + 0; t = $2 + 0
  if (last != "") {
    dt = t - last
    for (c = 0; c < ncpu; c++) {
      if (curr[c] != 0) continue
      idle += dt
      for (o = 0; o < ncpu; o++) if (o != c && nq[o] > 0) { beside += dt; break }
    }
  } else t0 = t
  last = t
  if ($3 ~ /sched_switch/) {
    prev = val("prev_pid"); next_ = val("next_pid")
    if (prev != 0 && val("prev_state") ~ /^R/) enqueue(prev, cpu)
    unqueue(next_)
    if (next_ in woke) { r = role[next_]; delay[r] += t - woke[next_]; waits[r]++; delete woke[next_] }
    curr[cpu] = next_
  } else if ($3 ~ /sched_wakeup/) {
    p = val("pid"); running = 0
    for (c = 0; c < ncpu; c++) if (curr[c] == p) running = 1
    if (!running) enqueue(p, val("target_cpu") + 0)
    if (p in role && !running) woke[p] = t
  } else if ($3 ~ /sched_migrate_task/) {
    p = val("pid"); if (p in qcpu) enqueue(p, val("dest_cpu") + 0)
  }
}
END {
  T = (last - t0) * ncpu
  if (T <= 0) { print "sched: no events"; exit 1 }
  printf "idle %4.1f  beside-queue %4.1f  wake µs proxy %5.1f mariadb %5.1f\n", 100 * idle / T, 100 * beside / T,
    waits["proxy"] ? 1e6 * delay["proxy"] / waits["proxy"] : 0, waits["mariadb"] ? 1e6 * delay["mariadb"] / waits["mariadb"] : 0
}
