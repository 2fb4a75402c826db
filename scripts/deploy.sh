#!/usr/bin/env bash
# `make deploy`: first `ses-setup check` against the SES the Worker will call (region, template
# name and endpoint from wrangler.toml's [vars], the way the Worker reads them; the From address
# and the rest of the template from templates/), then `wrangler deploy` only if nothing is
# missing there. A failed check stops here: wrangler never runs. Run through make (it sets PATH
# and the WASM_*_BIN variables wrangler's [build] step needs). Portable: bash 3.2, BSD tools.
#
#   DEPLOY_ENV=NAME           deploy wrangler environment NAME (`--env NAME`), checked with its
#                             own [env.NAME.vars]
#   SES_CHECK_ENDPOINT=URL    tests only: check this SES (a ses-local) instead of AWS's endpoint
#   DEPLOY_WRANGLER=PROGRAM   tests only: run PROGRAM instead of wrangler after the check
set -euo pipefail
cd "$(dirname "$0")/.."

check=(check --wrangler-toml wrangler.toml)
deploy=(deploy)
if [ -n "${DEPLOY_ENV:-}" ]; then
  check+=(--wrangler-env "$DEPLOY_ENV")
  deploy+=(--env "$DEPLOY_ENV")
fi
if [ -n "${SES_CHECK_ENDPOINT:-}" ]; then
  echo "==> SES_CHECK_ENDPOINT is set: checking $SES_CHECK_ENDPOINT, not AWS (for tests)"
  check+=(--endpoint "$SES_CHECK_ENDPOINT")
fi

echo "==> checking SES before deploying (make ses-check)"
status=0
cargo run -q --release -p ses-setup -- "${check[@]}" || status=$?
if [ "$status" -eq 1 ]; then
  echo "deploy stopped: SES is not ready for this Worker; the lines marked missing above say what to do. Nothing was deployed." >&2
  exit 1
elif [ "$status" -ne 0 ]; then
  echo "deploy stopped: the SES check could not run (see its error above). Nothing was deployed." >&2
  exit 1
fi

echo "==> wrangler ${deploy[*]}"
exec "${DEPLOY_WRANGLER:-wrangler}" "${deploy[@]}"
