//! End-to-end tests: the real components in a real porto process, over HTTP.
//!
//! One test binary with a module per area, as wasmtime does, so the link
//! step happens once.
//!
//! Tests that would fail, or make others fail, when the machine is busy
//! sit in a module named `alone` inside their area: those with a bound in
//! wall-clock time or resident memory (timeouts, drains, slot waits, idle
//! expiry, RSS ceilings), those that load every core (bursts, spinning
//! guests, a thousand instances, containerd), and those that compile
//! (`porto new`'s scaffold, `porto up --watch`). `make e2e` runs the rest
//! in parallel first (`-- --skip ::alone::`), then the `alone` tests one
//! at a time with nothing beside them (`-- ::alone:: --test-threads=1`).
//! Nothing compiles during either phase: `make test-build` first builds
//! everything the tests run, with the commands the tests use (the porto
//! binary, the shim, the fixtures, the components), so the tests find
//! them fresh (`harness::command_as_from_the_shell` runs those commands
//! without the variables cargo sets for a test, which would make cargo
//! rebuild build scripts that watch them). A new test whose outcome depends
//! on time or load goes in its area's `alone` module.

mod harness;

mod concurrency;
mod containerd;
mod crash;
mod deploy;
mod embedding;
mod errors;
mod gateway;
mod grpc;
mod hardening;
mod http2;
mod images;
mod lifecycle;
mod limits;
mod observability;
mod openapi;
mod orders;
mod outbound;
mod portability;
mod reuse;
mod scaffold;
mod scale_out;
mod traces;
mod users;
mod wasip3;
mod watch;
