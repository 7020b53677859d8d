# One entry per task a newcomer needs. Dependencies are optimised in the dev
# profile, so `up`, `test` and `bench` share one build of wasmtime.

CARGO ?= cargo
# One build cache per machine, shared by every clone, CI and the bench
# scripts (wasmtime takes ~15 minutes to build on two cores); `setup` makes
# a clone that was not the last to build rebuild its own crates
# (scripts/claim-build-cache).
CARGO_TARGET_DIR ?= $(HOME)/.cache/porto/target
export CARGO_TARGET_DIR
WASM_TARGET := wasm32-wasip2
GUESTS := -p api-gateway -p user-service -p order-service -p service-kit -p test-programs

.PHONY: setup up build images test test-start test-tools test-build lint unit e2e e2e-parallel e2e-alone sizes api-fuzz soak soak-ci bench bench-http2 bench-kv bench-hot-user bench-containerd portability

# `make test` records the wall time of each phase and prints them at its
# end (scripts/phase-times; `.ci/run` prints them even when a phase fails).
# The record is this clone's; a target run on its own outside `make test`
# adds to it only if one was started.
PORTO_PHASE_LOG ?= $(CURDIR)/.porto/phase-times
export PORTO_PHASE_LOG
begin = @scripts/phase-times begin $@
end = @scripts/phase-times end $@

# Phases run one after another even under `make -j`: `e2e-alone` must have
# the machine to itself.
.NOTPARALLEL:

## Install the toolchain pieces the project needs (idempotent).
setup:
	$(begin)
	rustup target add $(WASM_TARGET)
	rustup component add rustfmt clippy
	scripts/claim-build-cache
	$(end)

## Build the components and run the whole stack from compose.yaml.
up: setup
	$(CARGO) run -p porto -- up

## Build the three components and print their sizes and digests.
build: setup
	$(CARGO) run -p porto -- build

## OCI images of the three components: into porto's local store, and as
## `docker load` tarballs in .porto/<service>.tar.
images: setup
	for s in api-gateway user-service order-service; do \
	  $(CARGO) run --quiet -p porto -- image build $$s -t $$s:latest -o .porto/$$s.tar || exit 1; \
	done

## Everything CI runs: formatting, lints (native and wasm), all tests
## (unit, property, end-to-end), sizes, API fuzzing and a 30 s soak, in
## phases: everything the tests run is built before the first test starts.
test: test-start setup test-tools lint test-build unit e2e sizes api-fuzz soak-ci
	@scripts/phase-times report

test-start:
	@scripts/phase-times reset

## Debian packages the tests use (docker-registry, wrk, chromium, containerd…),
## and Redis and PostgreSQL on loopback, installed and started if missing.
test-tools:
	$(begin)
	scripts/install-test-tools
	scripts/backing-services
	$(end)

lint: test-tools
	$(begin)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(GUESTS) -- -D warnings
	scripts/check-feature-unification
	$(end)

## Everything the tests run, built before any of them starts, with the very
## commands the tests use (so they find it fresh and nothing compiles while
## tests run): the test binaries and the porto they drive, the shim, the
## misbehaving fixtures and the three components, the last also compiled
## to native code into the cache the e2e harness gives porto.
## crates/workspace-hack gives these commands one set of dependency builds
## (one wasmtime).
test-build: setup
	$(begin)
	$(CARGO) test --workspace --no-run
	$(CARGO) build -p containerd-shim-porto
	$(CARGO) build --release --target $(WASM_TARGET) -p test-programs
	$(CARGO_TARGET_DIR)/debug/porto build --interfaces -f compose.yaml \
	  --cache-dir $(CARGO_TARGET_DIR)/tmp/porto-compile-cache
	$(end)

## Unit and property tests of every crate (the end-to-end suite is `e2e`).
unit: test-build test-tools
	$(begin)
	$(CARGO) test --workspace --lib --bins
	$(CARGO) test --workspace --doc
	$(end)

## The end-to-end suite (tests/e2e): first every test but the `alone` ones,
## in parallel; then the `alone` ones (bounded by wall-clock time or memory,
## or compiling) one at a time with nothing beside them (tests/e2e/main.rs).
e2e: e2e-parallel e2e-alone

e2e-parallel: test-build test-tools
	$(begin)
	$(CARGO) test --workspace --test e2e -- --skip ::alone::
	$(end)

e2e-alone: test-build test-tools
	$(begin)
	$(CARGO) test --workspace --test e2e -- ::alone:: --test-threads=1
	$(end)

## Fails if a release component is 1 MiB or more.
sizes:
	$(begin)
	scripts/component-sizes
	$(end)

## schemathesis against the running stack from openapi.yaml (EXAMPLES=n).
api-fuzz:
	$(begin)
	tests/api-fuzz
	$(end)

## Mixed load for DURATION seconds (default 300): zero errors, bounded RSS.
soak:
	bench/soak

soak-ci:
	$(begin)
	DURATION=30 bench/soak
	$(end)

## Load benchmark: requests/s and latency through porto (see BENCHMARKS.md).
bench: setup
	bench/http-load

## HTTP/2 (h2load) and TLS against HTTP/1.1 (wrk) on porto's listeners,
## and TLS handshakes per second.
bench-http2: setup
	bench/http2

## The same load on the embedded, Redis and PostgreSQL backends, side by side.
bench-kv: setup
	bench/kv-backends

## One user's orders created and read back by 16 clients at once, with and
## without busy neighbours on every core: where a create's time goes.
bench-hot-user: setup
	bench/hot-user

## One component in a containerd container (porto's shim) vs porto:
## start-up, requests/s, memory (needs root; a private containerd).
bench-containerd: setup
	bench/containerd

## The same .wasm files on x86_64, aarch64 and riscv64 (porto cross-built,
## run under qemu-user) and under `wasmtime serve` (README: Portability).
## Slow the first time: one wasmtime build per architecture.
portability: setup
	scripts/portability-matrix
