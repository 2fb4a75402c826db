#!/usr/bin/env bash
# Installs what `make dev` and `make test` need, skipping whatever is already there:
# the wasm32 target, rustfmt/clippy, worker-build (pinned), wasm-bindgen-cli (the exact version
# in Cargo.lock), the npm devDependencies (wrangler, Node 22, binaryen's wasm-opt) and boto3
# in target/py (for ses-local's real-SDK test), and Debian's chromium (for the browser test).
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
say() { printf '==> %s\n' "$*"; }

command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup: npm (Node.js) is required" >&2; exit 1; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^${component}"; then
    say "adding $component"
    rustup component add "$component"
  fi
done

if ! worker-build --version 2>/dev/null | grep -q "$WORKER_BUILD_VERSION"; then
  say "installing worker-build $WORKER_BUILD_VERSION (first time: several minutes)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked \
    || cargo install worker-build --version "$WORKER_BUILD_VERSION"
fi

wasm_bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$wasm_bindgen_version" ] || { echo "setup: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wasm_bindgen_version\$"; then
  say "installing wasm-bindgen-cli $wasm_bindgen_version (first time: several minutes)"
  # Not --locked: one crate version in its lockfile is missing from the index.
  cargo install wasm-bindgen-cli --version "$wasm_bindgen_version" --force
fi

if [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/.bin/wasm-opt ] || [ ! -x node_modules/.bin/node ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm devDependencies (wrangler, node@22, binaryen)"
  npm ci --no-audit --no-fund
fi
# boto3, a real AWS SDK, for ses-local's SDK compatibility test.
BOTO3_VERSION=1.44.8
if ! target/py/bin/python -c "import boto3, sys; sys.exit(boto3.__version__ != '$BOTO3_VERSION')" 2>/dev/null; then
  say "installing boto3 $BOTO3_VERSION into target/py"
  command -v python3 >/dev/null || { echo "setup: python3 is required for the boto3 test" >&2; exit 1; }
  python3 -m venv target/py
  target/py/bin/pip install --quiet --disable-pip-version-check "boto3==$BOTO3_VERSION"
fi

# Debian's Chromium for the demo page's browser test (playwright-core drives it; no browser is
# ever downloaded).
if ! command -v chromium >/dev/null; then
  say "installing Debian's chromium (for the browser test)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi

node_modules/.bin/node --version | grep -q '^v22\.' || { echo "setup: node_modules/.bin/node is not Node 22" >&2; exit 1; }
