#!/usr/bin/env bash
# `make dev`: ses-local on 127.0.0.1:4579 seeded with ses-local.toml and the template from
# templates/ (through `ses-setup template`, as in production), and `wrangler dev` on
# 127.0.0.1:8787 pointed at it. Ctrl-C stops both. Run through make (it sets PATH and the
# WASM_*_BIN variables worker-build needs). Portable: bash 3.2 and BSD tools will do.
set -euo pipefail
cd "$(dirname "$0")/.."

SES_PORT=${SES_PORT:-4579}
WORKER_PORT=${WORKER_PORT:-8787}
# GATE_INTERVAL_MS=100 make dev: a faster gate, and ses-local throttling at the same interval.
GATE_INTERVAL_MS=${GATE_INTERVAL_MS:-1000}
# SES_REGIONS=us-east-1,eu-west-1,ap-south-1 make dev: a pool of regions, all served by ses-local
# (each with its own identities, template and throttling), one gate per region in the Worker.
SES_REGIONS=${SES_REGIONS:-}
# IP_RATE_LIMIT=off make dev: no per-IP limit (for `make bench-gate`, whose burst comes from one IP).
IP_RATE_LIMIT=${IP_RATE_LIMIT:-on}
# The address checks ask ses-local's DNS-over-HTTPS stand-in (its zone is in ses-local.toml);
# DOH_URL=https://cloudflare-dns.com/dns-query make dev asks the real one (example.com takes no mail there).

if [ ! -f .dev.vars ]; then
  echo "==> writing .dev.vars (ses-local's test credentials) from .dev.vars.example"
  sed "s#http://127.0.0.1:4579/#http://127.0.0.1:${SES_PORT}/#" .dev.vars.example > .dev.vars
fi
# Status tokens and the signup cookie are signed with a secret of this machine's own.
if ! grep -q '^STATUS_TOKEN_SECRET=' .dev.vars; then
  echo "==> adding a fresh STATUS_TOKEN_SECRET to .dev.vars"
  printf 'STATUS_TOKEN_SECRET=%s\n' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >> .dev.vars
fi

# One package per command, as `make build` and `cargo run -p ses-setup` build them (built together,
# their dependencies' features differ and the next of those relinks both).
cargo build -q --release -p ses-local
cargo build -q --release -p ses-setup
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# Local SES is one region, whatever wrangler.toml deploys to, and sends from the address
# ses-local.toml verifies, whatever templates/template.toml names for production: editing either
# for your account never breaks `make dev`. The template name is template.toml's, for both sides.
LOCAL_REGION=us-east-1
LOCAL_REGIONS=${SES_REGIONS:-$LOCAL_REGION}
case "$LOCAL_REGIONS" in *[!a-z0-9,-]*) echo "==> SES_REGIONS must be a comma list like us-east-1,eu-west-1" >&2; exit 1 ;; esac
LOCAL_REGION=${LOCAL_REGIONS%%,*}
# One ses-local URL per region (ses-local reads the region from each call's credential scope).
LOCAL_ENDPOINTS=$(echo "$LOCAL_REGIONS" | sed "s#[^,][^,]*#http://127.0.0.1:${SES_PORT}/#g")
LOCAL_FROM=$(sed -n 's/^verified_identities = \["\([^"]*\)".*/\1/p' ses-local.toml)
TEMPLATE_NAME=$(sed -n 's/^name = "\(.*\)"$/\1/p' templates/template.toml)
[ -n "$LOCAL_FROM" ] || { echo "==> ses-local.toml verifies no From address" >&2; exit 1; }
[ -n "$TEMPLATE_NAME" ] || { echo "==> templates/template.toml has no name" >&2; exit 1; }

# Templates and identities persist in .dev-state/ (git-ignored); ses-local.toml seeds them.
target/release/ses-local --port "$SES_PORT" --region "$LOCAL_REGIONS" --config ses-local.toml --state .dev-state/ses-local.json \
  --throttle-ms "$GATE_INTERVAL_MS" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:${SES_PORT}/_health" >/dev/null 2>&1 && break
  sleep 0.1
done
# The one template source, templates/, with its links pointed at this machine's Worker.
echo "==> loading templates/ into ses-local ($LOCAL_REGIONS)"
AWS_ACCESS_KEY_ID=AKIDSESLOCAL AWS_SECRET_ACCESS_KEY=ses-local-secret-access-key \
  target/release/ses-setup template --endpoint "$LOCAL_ENDPOINTS" --region "$LOCAL_REGIONS" \
  --from "$LOCAL_FROM" --success-url "http://127.0.0.1:${WORKER_PORT}/confirm" \
  --failure-url "http://127.0.0.1:${WORKER_PORT}/?error=link_failed"

# The demo page at /, which plain form posts are redirected back to.
wrangler dev --ip 127.0.0.1 --port "$WORKER_PORT" --var "GATE_INTERVAL_MS:$GATE_INTERVAL_MS" \
  --var "AWS_REGION:$LOCAL_REGION" --var "SES_TEMPLATE_NAME:$TEMPLATE_NAME" \
  --var "SES_REGIONS:$LOCAL_REGIONS" --var "SES_ENDPOINTS:$LOCAL_ENDPOINTS" \
  --var "IP_RATE_LIMIT:$IP_RATE_LIMIT" --var "DOH_URL:${DOH_URL:-http://127.0.0.1:${SES_PORT}/dns-query}" \
  --var DEMO_PAGE:true --var SUCCESS_REDIRECT_URL:/ --var FAILURE_REDIRECT_URL:/ \
  --var "VERIFIED_REDIRECT_URL:/?status=verified" &
pids+=($!)

healthy=no
for _ in $(seq 1 240); do
  if curl -fsS "http://127.0.0.1:${WORKER_PORT}/healthz" >/dev/null 2>&1; then
    healthy=yes
    cat <<MSG

==> signup-verify is running on http://127.0.0.1:${WORKER_PORT}/ (ses-local on http://127.0.0.1:${SES_PORT}/)
    Open the demo page: http://127.0.0.1:${WORKER_PORT}/
    Or try it with curl:
      curl -sS -X POST http://127.0.0.1:${WORKER_PORT}/signup -H 'content-type: application/json' -d '{"email":"you+test@example.com"}'
    Then open the outbox and click the verification link (it lands on /confirm: press the button):
      http://127.0.0.1:${SES_PORT}/_outbox
    Follow a signup with the statusToken from its answer:
      curl -sS http://127.0.0.1:${WORKER_PORT}/signup/status -H "authorization: Bearer <statusToken>"
    Ctrl-C stops both.

MSG
    break
  fi
  sleep 0.5
done
if [ "$healthy" != yes ]; then
  echo "==> wrangler dev did not answer /healthz on port ${WORKER_PORT} within 120 s: see its output above" >&2
  exit 1
fi
# Until either stops (bash 3.2 has no `wait -n`).
while kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null; do
  sleep 1
done
