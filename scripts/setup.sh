#!/usr/bin/env bash
# Installs what a make target needs, skipping whatever is already there. Portable (bash 3.2,
# BSD tools). The first run takes about 15 minutes (compiling worker-build and wasm-bindgen).
#
#   scripts/setup.sh build   (make dev, make deploy): the wasm32 target, worker-build (pinned),
#                            wasm-bindgen-cli (Cargo.lock's version), and the npm devDependencies
#                            (wrangler, Node 22, binaryen's wasm-opt, Redocly CLI). No browser,
#                            no Python.
#   scripts/setup.sh test    (make test): the above, plus what only the tests use: boto3 in
#                            target/py (ses-local's real-SDK test), Chromium (browser tests,
#                            through apt on Debian/Ubuntu only) and cargo-deny (make lint).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-build}
case "$mode" in build | test) ;; *) echo "usage: $0 build|test" >&2; exit 2 ;; esac

WORKER_BUILD_VERSION=0.8.7
BOTO3_VERSION=1.44.8
CARGO_DENY_VERSION=0.20.2
started=$(date +%s)
step=0
steps=4
[ "$mode" = test ] && steps=7
say() { step=$((step + 1)); printf '==> step %d of %d (%ds): %s\n' "$step" "$steps" "$(($(date +%s) - started))" "$*"; }
fail() { echo "setup: $*" >&2; exit 1; }

command -v cargo >/dev/null || fail "cargo (Rust) is required: https://rustup.rs"
command -v rustup >/dev/null || fail "rustup is required (rust-toolchain.toml names the toolchain): https://rustup.rs"
command -v npm >/dev/null || fail "npm (Node.js 18 or later) is required: https://nodejs.org"

say "Rust toolchain (rust-toolchain.toml: wasm32 target, rustfmt, clippy)"
# rustup installs whatever rust-toolchain.toml lists and is missing, on first use.
rustup show active-toolchain >/dev/null
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

say "worker-build $WORKER_BUILD_VERSION"
if ! worker-build --version 2>/dev/null | grep -q "$WORKER_BUILD_VERSION"; then
  echo "    installing (first time: several minutes)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked \
    || cargo install worker-build --version "$WORKER_BUILD_VERSION"
fi

wasm_bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$wasm_bindgen_version" ] || fail "no wasm-bindgen in Cargo.lock"
say "wasm-bindgen-cli $wasm_bindgen_version"
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wasm_bindgen_version\$"; then
  echo "    installing (first time: several minutes)"
  # Not --locked: one crate version in its lockfile is missing from the index.
  cargo install wasm-bindgen-cli --version "$wasm_bindgen_version" --force
fi

say "npm devDependencies (wrangler, node@22, binaryen, @redocly/cli)"
if [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/.bin/wasm-opt ] || [ ! -x node_modules/.bin/node ] \
   || [ ! -x node_modules/.bin/redocly ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
node_modules/.bin/node --version | grep -q '^v22\.' || fail "node_modules/.bin/node is not Node 22"

[ "$mode" = test ] || { echo "==> ready ($(($(date +%s) - started)) s)"; exit 0; }

say "boto3 $BOTO3_VERSION in target/py (ses-local's real-SDK test)"
if ! target/py/bin/python -c "import boto3, sys; sys.exit(boto3.__version__ != '$BOTO3_VERSION')" 2>/dev/null; then
  command -v python3 >/dev/null || fail "python3 is required for the boto3 test"
  python3 -m venv target/py
  target/py/bin/pip install --quiet --disable-pip-version-check "boto3==$BOTO3_VERSION"
fi

say "Chromium (the browser tests drive it with playwright-core; no browser is downloaded)"
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
  else
    fail "the browser tests need Chromium on PATH as 'chromium' (macOS: brew install --cask chromium, then link it; Fedora: dnf install chromium)"
  fi
fi

say "cargo-deny $CARGO_DENY_VERSION (licences, bans and sources in make lint)"
if ! cargo deny --version 2>/dev/null | grep -q " $CARGO_DENY_VERSION\$"; then
  cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked
fi
echo "==> ready ($(($(date +%s) - started)) s)"
