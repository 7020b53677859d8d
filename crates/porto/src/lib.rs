//! porto: runs a Compose application of WebAssembly HTTP components in
//! one process, with no Docker and an embedded durable store.
//!
//! The pieces, in the order a request meets them: [`server`] accepts it,
//! [`runtime`] gives it a fresh instance of the service's component
//! ([`engine`] compiled it once, [`host`] is that instance's world),
//! [`outbound`] routes the calls the guest makes to other services, and
//! [`kv`] is its storage. [`compose`] and [`app`] read and validate the
//! Compose file; [`builder`] and [`components`] produce the `.wasm` files.

pub mod admin;
pub mod app;
pub mod builder;
pub mod commands;
pub mod components;
pub mod compose;
pub mod engine;
pub mod guest_output;
pub mod host;
pub mod image;
pub mod kv;
pub mod metrics;
pub mod outbound;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod stack;
pub mod stats;
pub mod telemetry;
pub mod watch;
