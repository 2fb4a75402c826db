#!/usr/bin/env bash
# make fuzz: runs every fuzz target (fuzz/fuzz_targets) under libFuzzer for FUZZ_SECONDS each
# (default 600), then prints executions, coverage and failures per target. Needs the nightly
# toolchain (rustup toolchain install nightly) and cargo-fuzz (installed here if missing).
#
# Each target's working corpus lives in target/fuzz-corpus/<target> (kept between runs, not
# committed) and starts from the small seed corpus in fuzz/corpus/<target>, which stays as it is.
# An input that crashes or breaks a property is saved under fuzz/artifacts/<target>/; copy it to
# fuzz/regressions/<target>/ when you fix it, so `make test` replays it for good.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-600}
targets=${FUZZ_TARGETS:-signup_body email_address ses_reply status_token sigv4_verify query_api dns_answer}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "make fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz || { echo "cannot install cargo-fuzz" >&2; exit 1; }
fi

# sancov instrumentation does not survive the release profile's LTO (undefined __sancov_gen_).
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
cargo +nightly fuzz build --features libfuzzer -O || exit 1

summary=()
failed=0
for target in $targets; do
  work="target/fuzz-corpus/$target"
  log="target/fuzz-logs/$target.log"
  mkdir -p "$work" "$(dirname "$log")" "fuzz/artifacts/$target"
  before=$(find "fuzz/artifacts/$target" -type f | wc -l)
  echo "== $target: ${seconds} s"
  cargo +nightly fuzz run --features libfuzzer -O "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 >"$log" 2>&1
  status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  corpus=$(find "$work" -type f | wc -l | tr -d ' ')
  crashes=$(( $(find "fuzz/artifacts/$target" -type f | wc -l) - before ))
  [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes=1
  [ "$crashes" -ne 0 ] && failed=1
  summary+=("$(printf '%-14s executions %-10s %-22s corpus %-6s failures %s' \
    "$target" "${runs:-?}" "${cov:-cov: ?}" "$corpus" "$crashes")")
  [ "$status" -ne 0 ] && { echo "   failed: see $log and fuzz/artifacts/$target/"; grep -m3 -E 'panicked|ERROR' "$log"; }
done

echo
echo "== fuzz summary (${seconds} s per target)"
printf '%s\n' "${summary[@]}"
exit $failed
