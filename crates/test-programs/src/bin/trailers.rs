//! Fixture: a WASI 0.2 guest (wstd) that reads its request whole, trailers
//! included, and answers the body it got with trailers of its own: each
//! request trailer back as `echo-NAME`, and `x-answer: trailing`, all
//! declared in its `Trailer` header.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

#[cfg(target_arch = "wasm32")]
#[wstd::http_server]
async fn main(
    request: wstd::http::Request<wstd::http::Body>,
) -> Result<wstd::http::Response<wstd::http::Body>, wstd::http::Error> {
    use http_body_util::BodyExt as _;

    let collected = request.into_body().into_boxed_body().collect().await?;
    let mut echoed = http::HeaderMap::new();
    for (name, value) in collected.trailers().into_iter().flatten() {
        if let Ok(name) = http::HeaderName::from_bytes(format!("echo-{name}").as_bytes()) {
            echoed.append(name, value.clone());
        }
    }
    echoed.insert("x-answer", http::HeaderValue::from_static("trailing"));
    let declared = declared(&echoed);
    let body = http_body_util::Full::new(collected.to_bytes())
        .with_trailers(async move { Some(Ok(echoed)) });
    let mut response = wstd::http::Response::new(wstd::http::Body::from_http_body(body));
    if let Ok(declared) = http::HeaderValue::from_str(&declared) {
        response
            .headers_mut()
            .insert(http::header::TRAILER, declared);
    }
    Ok(response)
}

/// The `Trailer` header naming `trailers`: HTTP/1.1 sends only the
/// trailer fields a response declares.
#[cfg(target_arch = "wasm32")]
fn declared(trailers: &http::HeaderMap) -> String {
    trailers
        .keys()
        .map(http::HeaderName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
