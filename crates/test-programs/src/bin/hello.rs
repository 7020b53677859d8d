//! Fixture: The smallest wstd HTTP component, with no service-kit in the
//! way: the common ground on which porto and `wasmtime serve` are compared.

#[wstd::http_server]
async fn main(
    _request: wstd::http::Request<wstd::http::Body>,
) -> Result<wstd::http::Response<wstd::http::Body>, wstd::http::Error> {
    Ok(wstd::http::Response::new(
        "Hello, world!\n".to_owned().into(),
    ))
}
