//! Fixture: Returns from the handler without ever setting a response.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use wasip2::http::types::{IncomingRequest, ResponseOutparam};

fn main() {}

struct Silent;

impl wasip2::exports::http::incoming_handler::Guest for Silent {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        drop(response_out);
    }
}

wasip2::http::proxy::export!(Silent);
