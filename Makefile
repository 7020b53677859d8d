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

.PHONY: setup up build images test test-tools lint unit e2e sizes api-fuzz soak soak-ci bench bench-kv bench-containerd portability

## Install the toolchain pieces the project needs (idempotent).
setup:
	rustup target add $(WASM_TARGET)
	rustup component add rustfmt clippy
	scripts/claim-build-cache

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
## (unit, property, end-to-end), sizes, API fuzzing and a 30 s soak.
test: setup test-tools lint unit sizes api-fuzz soak-ci

## Debian packages the tests use (docker-registry, wrk, chromium, containerd…),
## and Redis and PostgreSQL on loopback, installed and started if missing.
test-tools:
	scripts/install-test-tools
	scripts/backing-services

lint: test-tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(GUESTS) -- -D warnings

## Unit tests of every crate plus the end-to-end suite (tests/e2e).
unit: test-tools
	$(CARGO) test --workspace

e2e:
	$(CARGO) test -p porto --test e2e

## Fails if a release component is 1 MiB or more.
sizes:
	scripts/component-sizes

## schemathesis against the running stack from openapi.yaml (EXAMPLES=n).
api-fuzz:
	tests/api-fuzz

## Mixed load for DURATION seconds (default 300): zero errors, bounded RSS.
soak:
	bench/soak

soak-ci:
	DURATION=30 bench/soak

## Load benchmark: requests/s and latency through porto (see BENCHMARKS.md).
bench: setup
	bench/http-load

## The same load on the embedded, Redis and PostgreSQL backends, side by side.
bench-kv: setup
	bench/kv-backends

## One component in a containerd container (porto's shim) vs porto:
## start-up, requests/s, memory (needs root; a private containerd).
bench-containerd: setup
	bench/containerd

## The same .wasm files on x86_64, aarch64 and riscv64 (porto cross-built,
## run under qemu-user) and under `wasmtime serve` (README: Portability).
## Slow the first time: one wasmtime build per architecture.
portability: setup
	scripts/portability-matrix
