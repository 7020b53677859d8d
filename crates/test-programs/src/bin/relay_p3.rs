//! Fixture: a WASI 0.3 gateway at its simplest (`wasip3`): every request
//! is answered with the status and body of a GET of `UPSTREAM_URL` (from
//! its environment). It imports nothing but WASI and wasi:http, so
//! `wasmtime serve` runs it too: the benchmark chain of WASI 0.3 guests.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

#[cfg(target_arch = "wasm32")]
mod guest {
    use http_body_util::BodyExt as _;
    use wasip3::http::types::{self, ErrorCode};
    use wasip3::http_compat::{
        http_from_wasi_response, http_into_wasi_request, http_into_wasi_response,
    };

    wasip3::http::service::export!(Relay);

    struct Relay;

    fn internal(error: impl std::fmt::Debug) -> ErrorCode {
        ErrorCode::InternalError(Some(format!("{error:?}")))
    }

    impl wasip3::exports::http::handler::Guest for Relay {
        async fn handle(_request: types::Request) -> Result<types::Response, ErrorCode> {
            let url = std::env::var("UPSTREAM_URL").map_err(internal)?;
            let upstream = http::Request::get(url)
                .body(String::new())
                .map_err(internal)?;
            let response = wasip3::http::client::send(http_into_wasi_request(upstream)?).await?;
            let response = http_from_wasi_response(response)?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(internal)?
                .to_bytes();
            let answer = http::Response::builder()
                .status(status)
                .body(http_body_util::Full::new(body))
                .map_err(internal)?;
            http_into_wasi_response(answer)
        }
    }
}

fn main() {}
