//! Guest fixtures for porto's tests, one small component per behaviour
//! (`src/bin/*.rs`): each exports `wasi:http/incoming-handler` and does
//! one thing a production host must survive. Built for `wasm32-wasip2` by
//! the end-to-end tests; natively they compile to nothing useful.
