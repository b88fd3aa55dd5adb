#!/usr/bin/env bash
# Replace the generated part of a hand-maintained document, keeping the rest.
#   scripts/splice.sh FILE NAME < new-content
# FILE holds the region
#   <!-- generated:NAME begin (scripts write between these lines; edit outside them) -->
#   ...
#   <!-- generated:NAME end -->
# and everything between the two marker lines becomes new-content. A FILE that
# does not exist yet is created holding just the region; a FILE without the
# region is an error (nothing hand-written is ever overwritten).
set -euo pipefail
file=$1 name=$2
begin="<!-- generated:$name begin (scripts write between these lines; edit outside them) -->"
end="<!-- generated:$name end -->"
new=$(mktemp)
trap 'rm -f "$new" "$new.out"' EXIT
cat > "$new"
if [ ! -e "$file" ]; then
  mkdir -p "$(dirname "$file")"
  { echo "$begin"; cat "$new"; echo "$end"; } > "$file"
  exit 0
fi
nb=$(grep -cxF -- "$begin" "$file" || true)
ne=$(grep -cxF -- "$end" "$file" || true)
if [ "$nb" != 1 ] || [ "$ne" != 1 ]; then
  echo "splice: $file must hold the region '$name' once (begin markers: $nb, end markers: $ne):" >&2
  echo "  $begin" >&2
  echo "  $end" >&2
  exit 1
fi
awk -v b="$begin" -v e="$end" -v f="$new" '
  $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
  $0 == e { if (!skip) { bad = 1 } skip = 0 }
  !skip { print }
  END { exit bad }
' "$file" > "$new.out" || { echo "splice: $file: the end marker of '$name' comes before its begin marker" >&2; exit 1; }
cat "$new.out" > "$file"
