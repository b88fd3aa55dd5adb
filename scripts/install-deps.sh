#!/usr/bin/env bash
# Install what sqlwarden needs, by purpose, idempotently, from Debian packages
# (and npm for the Node client). Safe to run repeatedly: a group whose packages
# are all present costs a few dpkg look-ups.
#   scripts/install-deps.sh [group...]    (default: all)
# groups:
#   demo   MariaDB server and client, curl: all `make demo` needs (the eBPF
#          objects are committed, so no compiler)
#   build  clang, llvm, libbpf: rebuild the eBPF objects (`make generate`, and
#          `make test`'s check that the committed ones are current)
#   test   everything the test suite drives: client libraries of five
#          languages, sysbench, nats-server, prometheus/promtool, chromium,
#          systemd-analyze, unshare
#   bench  sysbench and haproxy for scripts/bench.sh
#   soak   gnuplot for the plots of scripts/soak.sh
#   profile  perf, for scripts/ab.sh's AB_SCHED=1
#   all    every group
# `mariadb` is an older name of `demo`.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

demo_pkgs=(mariadb-server mariadb-client curl)
build_pkgs=(clang llvm libbpf-dev iproute2 make gcc)
test_pkgs=(python3-pymysql python3-mysqldb libmariadb3 libmariadb-java default-jdk-headless libdbd-mariadb-perl
           php-cli php-mysql sysbench nats-server prometheus chromium systemd util-linux)
bench_pkgs=(sysbench haproxy)
soak_pkgs=(gnuplot-nox)
profile_pkgs=(linux-perf)

want=()
groups=("$@"); [ ${#groups[@]} -eq 0 ] && groups=(all)
node=0
for g in "${groups[@]}"; do
  case "$g" in
    demo|mariadb) want+=("${demo_pkgs[@]}") ;;
    build) want+=("${build_pkgs[@]}") ;;
    test) want+=("${test_pkgs[@]}"); node=1 ;;
    bench) want+=("${bench_pkgs[@]}") ;;
    soak) want+=("${soak_pkgs[@]}") ;;
    profile) want+=("${profile_pkgs[@]}") ;;
    all) want+=("${demo_pkgs[@]}" "${build_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}" "${soak_pkgs[@]}" "${profile_pkgs[@]}"); node=1 ;;
    *) echo "install-deps: unknown group $g (demo build test bench soak profile all)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # de-duplicate (groups overlap)
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  stamp=/var/lib/apt/periodic/sqlwarden-apt-updated
  if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +720 2>/dev/null)" ]; then
    apt-get update -qq && mkdir -p "$(dirname "$stamp")" && touch "$stamp"
  fi
  echo "install-deps: installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$node" = 1 ]; then
  # Node.js comes with npm on these machines (the image's nodejs package
  # conflicts with Debian's npm); install Debian's only when neither is present.
  if ! command -v npm >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  # The Node client of the e2e client matrix: mysql2 from the committed lock file.
  bash "$(dirname "$0")/../test/clients/node/install.sh"
fi

# Debian's mariadb-server package may start the machine-wide service; our tests use
# a private instance (scripts/mariadb.sh) and never depend on it.
echo "install-deps: ok (${groups[*]})"
