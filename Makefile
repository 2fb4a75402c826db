# The two commands: `make dev` serves the Worker against ses-local; `make test` runs every check.
# Both install what is missing first (scripts/setup.sh) and are quick when everything is there.

SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
NODE_BIN := $(ROOT)/node_modules/.bin
CARGO_BIN := $(HOME)/.cargo/bin

# wrangler 4 needs Node >= 22.12: node_modules/.bin/node (npm package node@22) comes first.
export PATH := $(NODE_BIN):$(CARGO_BIN):$(PATH)
export WRANGLER_SEND_METRICS := false
# worker-build would download these from GitHub; use the locally installed ones.
export WASM_BINDGEN_BIN := $(CARGO_BIN)/wasm-bindgen
export WASM_OPT_BIN := $(NODE_BIN)/wasm-opt
# Redocly CLI: no usage data, no update check.
export REDOCLY_TELEMETRY := off
export REDOCLY_SUPPRESS_UPDATE_NOTICE := true
# CI builds once from a clean clone: incremental caches (about 1 GB) would only take disk.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

.PHONY: help dev test setup setup-build build lint unit e2e deploy-check client-check fuzz ses-template ses-check bench profile bench-gate bench-abuse disposable-domains deploy dist clean
.DEFAULT_GOAL := help

# `make` alone: the targets and what each does (the `##` comments below).
help:
	@echo "signup-verify: make <target>"
	@sed -n 's/^\([a-z0-9-]*\):.*## \(.*\)/  \1\t\2/p' $(MAKEFILE_LIST) | expand -t 18

dev: setup-build ## serve the Worker against ses-local (installs what is missing first)
	@scripts/dev.sh

test: setup lint build deploy-check client-check ## every check: lint, the bundle, the JS client, unit, e2e and browser tests
	cargo test --workspace

# What the tests need on top of the build tools (boto3, Chromium, cargo-deny).
setup: ## install what the tests need (the build tools, boto3, Chromium, cargo-deny)
	@scripts/setup.sh test

# What building, serving and deploying need: no browser, no Python packages.
setup-build: ## install what building, serving and deploying need
	@scripts/setup.sh build

# The Worker bundle in build/ (what wrangler dev and the e2e tests run), the ses-local binary
# (optimized: its latency is part of every spacing the timing tests measure) and ses-setup (what
# `make deploy` runs first, and its test runs through make). One package per cargo command, as
# `cargo run -p ses-setup` builds it: built together, their dependencies' features differ and
# each alternation relinks the binaries (LTO, about a minute each).
build: ## the Worker bundle in build/, ses-local and ses-setup
	scripts/build-worker.sh
	cargo build --release -p ses-local
	cargo build --release -p ses-setup

lint: ## fmt, clippy (host and wasm32), cargo deny, redocly lint
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings
	cargo clippy -p signup-verify-bench-rust-floor --target wasm32-unknown-unknown -- -D warnings
	cargo deny check licenses bans sources
	$(NODE_BIN)/redocly lint openapi.yaml

# The bundle `wrangler deploy` would upload, built and checked without uploading, and held to its
# size budget (gzip -9 bytes; docs/benchmarks.md, "Upload size").
UPLOAD_BUDGET_BYTES := 468850
deploy-check: ## the bundle wrangler deploy would upload, held to its size budget
	rm -rf target/deploy-dry-run
	wrangler deploy --dry-run --outdir target/deploy-dry-run
	scripts/check-upload-size.sh target/deploy-dry-run $(UPLOAD_BUDGET_BYTES)

# The JavaScript client (clients/js): the types regenerated from openapi.yaml must be the ones
# checked in, then `tsc --noEmit` and the build to clients/js/dist. Its node tests (and the
# examples' browser tests) run against a stack in `cargo test --test js_client`.
client-check: setup-build ## the JS client: generated types up to date, type-checked, built
	npm run --silent check -w clients/js

unit: ## only the host unit tests
	cargo test --workspace --lib --bins

e2e: setup build ## only the end-to-end tests
	cargo test --test contract --test e2e --test gate --test gate_timing --test browser --test demo_browser --test abuse --test follow_up --test lifecycle --test js_client --test harness --test dist --test address_checks --test regions

# Every fuzz target for FUZZ_SECONDS (default 600) each, on nightly; prints executions, coverage
# and failures. `make test` replays the kept corpora on stable (fuzz/tests/corpora.rs).
fuzz: ## every fuzz target for FUZZ_SECONDS each (nightly)
	@scripts/fuzz.sh

# The native core per signup (sign, parse, classify), with criterion; then signup-verify beside
# the aws4fetch + JavaScript Durable Object baseline, the two-object floor and the Rust floor
# (bench/) on its own loopback stack, spacing, slot use and flood intake (against
# BENCH_COMPARE_BUILD too, if given), queue intake at the real interval, and the cost of each
# SQLite statement a signup runs. Prints every figure with what it exercised (about 18 minutes;
# BENCH_ROUNDS and BENCH_INTAKE_RECORDS make it shorter).
bench: setup build ## the benchmarks (about 18 minutes)
	scripts/build-worker.sh bench/rust-floor
	cargo bench --bench core
	cargo bench --bench stack
	cargo bench --bench cost
	cargo bench --bench regions

# Against a running `make dev` (wrangler's inspector on 9229): a V8 CPU profile of N signups by
# where the time goes (wasm, JS glue, runtime builtins, GC). Start it with IP_RATE_LIMIT=off.
profile: ## a V8 CPU profile of N signups against a running make dev
	node scripts/profile_signup.mjs http://127.0.0.1:8787 9229 $(N)

# Against a running `IP_RATE_LIMIT=off GATE_INTERVAL_MS=100 make dev`. N signups, default 200.
N ?= 200
bench-gate: ## a burst of N signups against a running make dev
	python3 scripts/bench_gate.py -n $(N) --interval-ms $${GATE_INTERVAL_MS:-$$(sed -n 's/^GATE_INTERVAL_MS = "\([0-9]*\)"/\1/p' wrangler.toml)}

# The vendored throwaway-domain list (crates/web/data/), byte for byte as published, with its
# provenance; needs network. Then `make test`.
disposable-domains: ## refresh the vendored throwaway-domain list (network), then run make test
	scripts/refresh-disposable-domains.sh

# Against a running `GATE_INTERVAL_MS=100 make dev`: the attack mix of issue F.
bench-abuse: ## issue F's and K's attacks and O's bad domains against a running GATE_INTERVAL_MS=100 make dev
	python3 scripts/bench_abuse.py

# `make ses-check` first (in the Worker's region, with your AWS credentials), and `wrangler deploy`
# only when nothing is missing there. DEPLOY_ENV=name deploys wrangler environment `name`.
# SES_CHECK_ENDPOINT and DEPLOY_WRANGLER are for tests only (scripts/deploy.sh says how).
deploy: setup-build ## ses-check in the Worker's region, then wrangler deploy (see docs/deploy.md)
	@scripts/deploy.sh

# The release bundle: the Worker as build-worker.sh builds it, wrangler.toml without [build],
# templates/ and docs/deploy-from-release.md, deployable with Node and wrangler alone.
dist: setup-build ## the release bundle dist/signup-verify-<version>.tar.gz, deployable without Rust
	scripts/build-worker.sh
	scripts/dist.sh

# The SES side, with your AWS credentials (environment or AWS_PROFILE), in the Worker's region:
# wrangler.toml's [vars] name the region, the template and the endpoint (a different AWS_REGION
# in the environment is refused). Create or update the template from templates/; then report
# what is still missing.
SES_SETUP := cargo run -q --release -p ses-setup --
SES_WORKER := --wrangler-toml wrangler.toml
ses-template: ## create or update the SES template from templates/ (the Worker's region, your AWS credentials)
	$(SES_SETUP) template $(SES_WORKER) $(SES_ARGS)

ses-check: ## report what SES still lacks in the Worker's region (template, From identity, production access)
	$(SES_SETUP) check $(SES_WORKER) $(SES_ARGS)

clean: ## remove the build, the release bundles, the e2e state and wrangler's local state
	rm -rf build dist target/e2e .wrangler /dev/shm/signup-verify-e2e
