//! Fixture: A WASI 0.3 hello world (`wasi:http/handler@0.3.x`, built with
//! the `wasip3` crate), as a user of Spin 4 or wasmCloud 2.5 writes one.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

#[cfg(target_arch = "wasm32")]
mod guest {
    use wasip3::http::types::{ErrorCode, Fields, Request, Response};
    use wasip3::{wit_bindgen, wit_future, wit_stream};

    wasip3::http::service::export!(Hello);

    struct Hello;

    impl wasip3::exports::http::handler::Guest for Hello {
        async fn handle(_request: Request) -> Result<Response, ErrorCode> {
            let (mut body, body_reader) = wit_stream::new();
            let (trailers, trailers_reader) = wit_future::new(|| Ok(None));
            let (response, _sent) =
                Response::new(Fields::new(), Some(body_reader), trailers_reader);
            drop(trailers);
            wit_bindgen::spawn_local(async move {
                let unwritten = body.write_all(b"Hello, WASI 0.3!\n".to_vec()).await;
                debug_assert!(unwritten.is_empty());
            });
            Ok(response)
        }
    }
}

fn main() {}
