//! porto, the command line: runs a Compose application of WebAssembly
//! HTTP components in one process, with no Docker and an embedded durable
//! store.
//!
//! This crate is the front end. It reads and validates the Compose file
//! ([`compose`], then [`app`]), builds or fetches each component
//! (`builder`, `components`), and hands plain service configurations to
//! the host library, `porto-host`, which runs them; `porto-kv` stores the
//! guests' data and `porto-oci` makes and moves images. What it adds on
//! top: the subcommands ([`commands`]), Kubernetes manifests ([`kube`]),
//! new services ([`scaffold`]), `--watch` (`watch`), the admin
//! listener (`admin`) and the console output.

mod admin;
pub mod app;
mod builder;
pub mod commands;
pub mod components;
pub mod compose;
pub mod kube;
mod progress;
pub mod scaffold;
mod watch;
