#!/usr/bin/env bash
# The Worker bundle in build/: worker-build (cargo at opt-level "z" for the wasm only, wasm-bindgen,
# wasm-opt -Oz from Cargo.toml's [package.metadata.wasm-pack.profile.release]), then the wasm's
# name section removed: worker-build always keeps it (`--debuginfo`), about 150 KB of function
# names and 40 KB of the gzipped upload. Panics and CPU profiles then name wasm functions by index. Run by `make build`, `make dev` and
# wrangler's [build] step (so `wrangler deploy` uploads the same bundle). With a directory
# (`scripts/build-worker.sh bench/rust-floor`), the same build of that workspace crate into its
# own build/.
set -euo pipefail
cd "$(dirname "$0")/.."
cd "${1:-.}"
CARGO_PROFILE_RELEASE_OPT_LEVEL=z worker-build --release
# The feature set worker-build passes to wasm-opt, so nothing newer than workerd reads is emitted.
"${WASM_OPT_BIN:-wasm-opt}" build/index_bg.wasm -o build/index_bg.wasm \
  --strip-debug --strip-producers \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling
