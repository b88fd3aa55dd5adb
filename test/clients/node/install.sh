#!/usr/bin/env bash
# Install the Node client's dependencies (mysql2) from the committed
# package-lock.json, once: npm ci only when node_modules is missing or stale.
set -euo pipefail
cd "$(dirname "$0")"
if [ -f node_modules/.package-lock.json ] && [ -d node_modules/mysql2 ] && ! [ package-lock.json -nt node_modules/.package-lock.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
