//! End-to-end tests: the real components in a real porto process, over HTTP.
//!
//! One test binary with a module per area, as wasmtime does, so the link
//! step happens once.

mod harness;

mod concurrency;
mod containerd;
mod crash;
mod deploy;
mod embedding;
mod errors;
mod gateway;
mod hardening;
mod images;
mod lifecycle;
mod limits;
mod observability;
mod openapi;
mod orders;
mod portability;
mod reuse;
mod scaffold;
mod scale_out;
mod traces;
mod users;
mod watch;
