//! The bottom layer: what a front end decides about a service, as plain
//! data with its parsing from configuration keys and the pure rules that
//! follow from it. Nothing here knows wasmtime, a socket or another layer.
//!
//! - [`service`]: one service's configuration, the sum of the rest;
//! - [`limits`]: what a request, an instance and the pool may use, and the
//!   checks that need no guest;
//! - [`reuse`]: when an instance may serve another request;
//! - [`outbound`]: where a guest's outbound request goes, and its label.

pub(crate) mod limits;
pub(crate) mod outbound;
pub(crate) mod reuse;
pub(crate) mod service;
