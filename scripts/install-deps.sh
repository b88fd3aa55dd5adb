#!/usr/bin/env bash
# Install what sqlwarden needs to build, test, demo and bench, idempotently,
# from Debian packages (and npm for the Node client). Safe to run repeatedly.
#   scripts/install-deps.sh [group...]   groups: build mariadb test bench all (default: all)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

build_pkgs=(clang llvm libbpf-dev iproute2 make gcc)
mariadb_pkgs=(mariadb-server mariadb-client)
test_pkgs=(python3-pymysql python3-mysqldb libmariadb-java default-jdk-headless libdbd-mariadb-perl
           php-cli php-mysql sysbench nats-server prometheus chromium)
bench_pkgs=(sysbench haproxy)

want=()
groups=("$@"); [ ${#groups[@]} -eq 0 ] && groups=(all)
for g in "${groups[@]}"; do
  case "$g" in
    build) want+=("${build_pkgs[@]}") ;;
    mariadb) want+=("${mariadb_pkgs[@]}") ;;
    test) want+=("${test_pkgs[@]}") ;;
    bench) want+=("${bench_pkgs[@]}") ;;
    all) want+=("${build_pkgs[@]}" "${mariadb_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
    *) echo "unknown group $g" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  stamp=/var/lib/apt/periodic/sqlwarden-apt-updated
  if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +720 2>/dev/null)" ]; then
    apt-get update -qq && mkdir -p "$(dirname "$stamp")" && touch "$stamp"
  fi
  echo "install-deps: installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node.js comes with npm on these machines (the image's nodejs package conflicts with
# Debian's npm); install Debian's only when neither is present.
if [[ " ${groups[*]} " =~ " test " || " ${groups[*]} " =~ " all " ]] && ! command -v npm >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# The Node client of the e2e client matrix: mysql2 from the committed lock file.
if [[ " ${groups[*]} " =~ " test " || " ${groups[*]} " =~ " all " ]]; then
  bash "$(dirname "$0")/../test/clients/node/install.sh"
fi

# Debian's mariadb-server package may start the machine-wide service; our tests use
# a private instance (scripts/mariadb.sh) and never depend on it.
echo "install-deps: ok (${groups[*]})"
