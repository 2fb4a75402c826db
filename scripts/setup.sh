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
#
# Before installing anything it looks for every tool it cannot install itself (a C compiler, curl,
# Python's venv, ...) and, if any is missing, stops once with the whole list and how to install
# each (Debian/Ubuntu package names, and a single apt-get line).
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

# Every tool this mode needs and cannot install itself, checked before anything is installed:
# `missing` collects one line per missing tool, `packages` the Debian/Ubuntu packages for them.
missing=""
packages=""
have() { command -v "$1" >/dev/null 2>&1; }
lack() { # TOOL WHAT-FOR DEBIAN-PACKAGES OTHERWISE
  how="Debian/Ubuntu: apt-get install $3; otherwise $4"
  [ -n "$3" ] || how=$4
  missing="${missing}  - $1 ($2). $how
"
  [ -z "$3" ] || packages="$packages $3"
}
rustup_sh="install Rust with rustup: curl --proto '=https' -sSf https://sh.rustup.rs | sh"
have cargo || lack cargo "builds the Worker, ses-local and ses-setup" "" "$rustup_sh"
have rustup || lack rustup "installs rust-toolchain.toml's toolchain and the wasm32 target" "" "$rustup_sh"
have npm || lack npm "installs wrangler, Node 22 and wasm-opt" npm "Node.js 18 or later: https://nodejs.org"
have cc || lack cc "links Rust and compiles the C parts of -sys crates" build-essential "a C compiler as cc (macOS: xcode-select --install)"
have curl || lack curl "make dev waits for its servers with it" curl "your system's curl"
have tar || lack tar "make dist packs the release bundle" tar "your system's tar"
have gzip || lack gzip "make dist and the upload-size check" gzip "your system's gzip"
# worker-build, when it has to be compiled, links OpenSSL (native-tls; not on macOS).
if ! worker-build --version 2>/dev/null | grep -q "$WORKER_BUILD_VERSION" && [ "$(uname -s)" = Linux ] \
   && ! { have pkg-config && pkg-config --exists openssl; }; then
  lack "pkg-config and OpenSSL's headers" "compiling worker-build" "pkg-config libssl-dev" "pkg-config and OpenSSL's development package"
fi
if [ "$mode" = test ]; then
  have python3 || lack python3 "ses-local's boto3 test and the docs' Python webhook verifier" "python3 python3-venv" "Python 3.8 or later"
  # boto3 goes into a venv, and `python3 -m venv` needs ensurepip (Debian: python3-venv). Tried
  # for real, in a throwaway venv, as long as target/py has no boto3 yet.
  if have python3 && ! target/py/bin/python -c "import boto3" >/dev/null 2>&1; then
    rm -rf target/setup-venv-probe
    python3 -m venv target/setup-venv-probe >/dev/null 2>&1 \
      || lack "python3 -m venv" "holds boto3 for ses-local's real-SDK test" python3-venv "a Python 3 with venv and ensurepip"
    rm -rf target/setup-venv-probe
  fi
  have ps || lack ps "the e2e harness checks its process groups with it" procps "your system's ps"
  if ! have chromium && ! have chromium-browser && [ -z "${CHROMIUM_PATH:-}" ]; then
    if [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; then
      # Installed below through apt, which needs root.
      [ "$(id -u)" -eq 0 ] || have sudo \
        || lack chromium "the browser tests drive it; setup installs it with apt as root or through sudo" chromium "set CHROMIUM_PATH to a Chromium"
    else
      lack chromium "the browser tests drive it" "" "put it on PATH as chromium or set CHROMIUM_PATH (macOS: brew install --cask chromium, then link it; Fedora: dnf install chromium)"
    fi
  fi
fi
if [ -n "$missing" ]; then
  {
    echo "setup: missing tools (scripts/setup.sh $mode); install them, then run make again:"
    printf '%s' "$missing"
    [ -z "$packages" ] || echo "On Debian/Ubuntu, all the packaged ones at once: sudo apt-get install$packages"
  } >&2
  exit 1
fi

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
  python3 -m venv target/py
  target/py/bin/pip install --quiet --disable-pip-version-check "boto3==$BOTO3_VERSION"
fi

say "Chromium (the browser tests drive it with playwright-core; no browser is downloaded)"
# Only on Debian/Ubuntu once here: elsewhere a missing Chromium stopped the tool check above.
if ! have chromium && ! have chromium-browser && [ -z "${CHROMIUM_PATH:-}" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi

say "cargo-deny $CARGO_DENY_VERSION (licences, bans and sources in make lint)"
if ! cargo deny --version 2>/dev/null | grep -q " $CARGO_DENY_VERSION\$"; then
  cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked
fi
echo "==> ready ($(($(date +%s) - started)) s)"
