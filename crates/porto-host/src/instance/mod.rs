//! The middle layer: guest instances. Which `wasi:http` world a component
//! serves ([`abi`]), a prepared component ([`component`]), the store data one instance may touch ([`host`], with
//! its output capture, outbound hooks and key-value view), the pool that
//! keeps instances between requests ([`pool`], which knows nothing of
//! wasmtime) and running one request in a guest of an ABI ([`p2`]:
//! `wasi:http@0.2`), which answers and says what became of the instance.
//!
//! Nothing here knows the dispatcher or the server: a call into another
//! service goes through the [`outbound::InProcess`] trait the dispatcher
//! implements.

pub(crate) mod abi;
pub(crate) mod component;
pub(crate) mod guest_output;
pub(crate) mod host;
pub(crate) mod outbound;
pub(crate) mod p2;
pub(crate) mod pool;
