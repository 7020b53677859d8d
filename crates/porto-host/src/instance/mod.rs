//! The middle layer: guest instances. A prepared component
//! ([`component`]), the store data one instance may touch ([`host`], with
//! its output capture, outbound hooks and key-value view, with the
//! [`network`] sender for calls that leave the process), the pool that
//! keeps instances between requests ([`pool`], which knows nothing of
//! wasmtime) and running requests in a guest of each world: [`p2`]
//! (`wasi:http@0.2`: one request per instance at a time, which answers and
//! says what became of the instance) and [`p3`] (`wasi:http@0.3`: several
//! at once, scheduled by wasmtime-wasi-http's workers, with the client of
//! [`p3_client`] and the per-request [`hooks`]).
//!
//! Nothing here knows the dispatcher or the server: a call into another
//! service goes through the [`outbound::InProcess`] trait the dispatcher
//! implements.

pub(crate) mod component;
pub(crate) mod guest_output;
pub(crate) mod hooks;
pub(crate) mod host;
pub(crate) mod network;
pub(crate) mod outbound;
pub(crate) mod outcome;
pub(crate) mod p2;
pub(crate) mod p3;
pub(crate) mod p3_client;
pub(crate) mod pool;
