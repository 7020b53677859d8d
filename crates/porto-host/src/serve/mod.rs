//! The top layer below [`crate::Stack`]: requests from sockets and from
//! guests to the instances of the layer below. [`server`] accepts
//! connections and deals them to worker threads ([`worker`] says which one
//! a thread is); [`connection`] serves one, over [`tls`] when its service
//! has a certificate, in HTTP/1.1 or HTTP/2 (closed by [`idle`] once
//! without streams for a while); [`dispatcher`] wraps each
//! request in what every request gets (id, span, limits, slot), runs its
//! guest and keeps or drops the instance; [`service`] is one running
//! service.

pub(crate) mod connection;
pub(crate) mod dispatcher;
pub(crate) mod idle;
pub(crate) mod parse_errors;
pub(crate) mod server;
pub(crate) mod service;
pub(crate) mod tls;
pub(crate) mod worker;
pub(crate) mod write_coalescing;
