#!/usr/bin/env bash
# Fails when what `wrangler deploy` would upload (the code modules in a `--dry-run --outdir`
# directory) is larger, gzipped at -9, than the budget in bytes. `make test` runs it after the
# dry run. The budget is the size reached (docs/benchmarks.md, "Upload size"); raise it only on purpose.
set -euo pipefail
dir="${1:?usage: check-upload-size.sh DRY_RUN_OUTDIR BUDGET_BYTES}"
budget="${2:?usage: check-upload-size.sh DRY_RUN_OUTDIR BUDGET_BYTES}"
total=0
found=0
for file in "$dir"/*.wasm "$dir"/*.js "$dir"/*.mjs; do
  [ -f "$file" ] || continue
  size=$(gzip -9 -c "$file" | wc -c | tr -d ' ')
  echo "upload: $(basename "$file") $(wc -c < "$file" | tr -d ' ') bytes, $size gzipped"
  total=$((total + size))
  found=$((found + 1))
done
[ "$found" -gt 0 ] || { echo "check-upload-size: no .wasm or .js in $dir" >&2; exit 1; }
echo "upload: $total bytes gzipped in total; budget $budget"
if [ "$total" -gt "$budget" ]; then
  echo "check-upload-size: the upload grew past its budget ($total > $budget bytes gzipped)" >&2
  exit 1
fi
