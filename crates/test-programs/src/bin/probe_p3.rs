//! Fixture: a WASI 0.3 guest (`wasip3`) that shows what the host gave
//! each request while others share its instance. Every answer is JSON
//! with `instance` (an id drawn when the instance starts), `served` (its
//! requests so far, this one included) and `most_at_once` (the most it
//! has had in flight at once), plus, by path:
//!
//! - `/` nothing more (a counter);
//! - `/wait?ms=N` waits N ms (an async wait: the instance serves others
//!   meanwhile) and echoes the request's `traceparent` and `x-request-id`;
//! - `/call?url=U&ms=N` waits N ms, then GETs U and answers its status and
//!   body, and the `traceparent` this request came with;
//! - `/headers` the request's headers;
//! - `/print` prints `probe request N` to stdout;
//! - `/grow?mib=N` keeps N MiB more in a global;
//! - `/kv/incr?bucket=B&key=K` adds 1 to a counter and answers its value;
//!   `/kv/append?bucket=B&key=K&item=I` appends I to a list with a
//!   compare-and-swap loop (`retries` says how often it lost the race);
//!   `/kv/get?bucket=B&key=K` reads, `/kv/set?...&value=V` writes: all
//!   through `wasi:keyvalue@0.3.0-draft`, whose calls are async, so the
//!   instance serves others while one waits on the store;
//! - `/spin` loops forever without awaiting;
//! - `/trap` aborts;
//! - `/trailers` answers the request's body with its trailers echoed as
//!   `echo-NAME` trailers, and `x-answer: trailing` (no JSON).
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

#[cfg(target_arch = "wasm32")]
mod guest {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use http_body_util::BodyExt as _;
    use serde_json::{Value, json};
    use wasip3::http::types::{self, ErrorCode};
    use wasip3::http_compat::{
        http_from_wasi_request, http_from_wasi_response, http_into_wasi_request,
        http_into_wasi_response,
    };

    wasip3::http::service::export!(Probe);

    mod kv {
        wasip3::wit_bindgen::generate!({
            path: "../../wit/keyvalue-p3",
            world: "wasi:keyvalue/imports",
            runtime_path: "wasip3::wit_bindgen::rt",
            generate_all,
        });
    }
    use kv::wasi::keyvalue::{atomics, store};

    static INSTANCE: AtomicU64 = AtomicU64::new(0);
    static SERVED: AtomicU64 = AtomicU64::new(0);
    static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);
    static MOST_AT_ONCE: AtomicU64 = AtomicU64::new(0);
    static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

    struct Probe;

    impl wasip3::exports::http::handler::Guest for Probe {
        async fn handle(request: types::Request) -> Result<types::Response, ErrorCode> {
            if request.get_path_with_query().as_deref() == Some("/trailers") {
                return echo_trailers(request).await;
            }
            if INSTANCE.load(Ordering::Relaxed) == 0 {
                INSTANCE.store(
                    wasip3::random::random::get_random_u64() | 1,
                    Ordering::Relaxed,
                );
            }
            let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
            let now = IN_FLIGHT.fetch_add(1, Ordering::Relaxed) + 1;
            MOST_AT_ONCE.fetch_max(now, Ordering::Relaxed);
            let request = http_from_wasi_request(request)?;
            let answer = route(&request, served).await;
            IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
            let (status, mut body) = answer;
            body["instance"] = json!(INSTANCE.load(Ordering::Relaxed).to_string());
            body["served"] = json!(served);
            body["most_at_once"] = json!(MOST_AT_ONCE.load(Ordering::Relaxed));
            let response = http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(body.to_string())
                .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
            http_into_wasi_response(response)
        }
    }

    /// The request's body back, with its trailers back as `echo-NAME`
    /// trailers and `x-answer: trailing`.
    async fn echo_trailers(request: types::Request) -> Result<types::Response, ErrorCode> {
        let request = http_from_wasi_request(request)?;
        let collected = request
            .into_body()
            .collect()
            .await
            .map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;
        let mut echoed = http::HeaderMap::new();
        for (name, value) in collected.trailers().into_iter().flatten() {
            if let Ok(name) = http::HeaderName::from_bytes(format!("echo-{name}").as_bytes()) {
                echoed.append(name, value.clone());
            }
        }
        echoed.insert("x-answer", http::HeaderValue::from_static("trailing"));
        // HTTP/1.1 sends only the trailer fields a response declares.
        let declared = echoed
            .keys()
            .map(http::HeaderName::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let body = http_body_util::Full::new(collected.to_bytes())
            .with_trailers(async move { Some(Ok(echoed)) });
        let response = http::Response::builder()
            .status(200)
            .header(http::header::TRAILER, declared)
            .body(body)
            .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
        http_into_wasi_response(response)
    }

    fn query(request: &http::Request<impl Sized>, name: &str) -> Option<String> {
        request.uri().query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| value.to_string())
        })
    }

    fn header(request: &http::Request<impl Sized>, name: &str) -> Value {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map_or(Value::Null, |v| json!(v))
    }

    async fn wait(request: &http::Request<impl Sized>) {
        let ms: u64 = query(request, "ms")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0);
        if ms > 0 {
            wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
        }
    }

    async fn route(request: &http::Request<impl Sized>, served: u64) -> (u16, Value) {
        match request.uri().path() {
            "/" => (200, json!({})),
            "/wait" => {
                wait(request).await;
                (
                    200,
                    json!({
                        "traceparent": header(request, "traceparent"),
                        "request_id": header(request, "x-request-id"),
                    }),
                )
            }
            "/call" => {
                wait(request).await;
                let Some(url) = query(request, "url") else {
                    return (400, json!({"error": "url is required"}));
                };
                let traceparent = header(request, "traceparent");
                match get(&url).await {
                    Ok((status, body)) => (
                        200,
                        json!({"status": status, "body": body, "traceparent": traceparent}),
                    ),
                    Err(error) => (502, json!({"error": format!("{error:?}")})),
                }
            }
            "/headers" => {
                let headers: serde_json::Map<String, Value> = request
                    .headers()
                    .iter()
                    .map(|(name, value)| {
                        (name.to_string(), json!(value.to_str().unwrap_or_default()))
                    })
                    .collect();
                (200, json!({"headers": headers}))
            }
            "/print" => {
                println!("probe request {served}");
                (200, json!({}))
            }
            "/grow" => {
                let mib: usize = query(request, "mib")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
                for _ in 0..mib {
                    kept.push(vec![1u8; 1 << 20]);
                }
                (200, json!({"kept_mib": kept.len()}))
            }
            path if path.starts_with("/kv/") => match keyvalue(request, path).await {
                Ok(body) => (200, body),
                Err(store::Error::AccessDenied) => (403, json!({"error": "access_denied"})),
                Err(error) => (503, json!({"error": format!("{error:?}")})),
            },
            "/spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/trap" => std::process::abort(),
            _ => (404, json!({"error": "no such route"})),
        }
    }

    async fn keyvalue(
        request: &http::Request<impl Sized>,
        path: &str,
    ) -> Result<Value, store::Error> {
        let bucket = store::open(query(request, "bucket").unwrap_or_default()).await?;
        let key = query(request, "key").unwrap_or_default();
        match path {
            "/kv/incr" => Ok(json!({"value": atomics::increment(&bucket, key, 1).await?})),
            "/kv/get" => {
                let value = bucket.get(key).await?;
                Ok(json!({"value": value.map(|v| String::from_utf8_lossy(&v).to_string())}))
            }
            "/kv/set" => {
                let value = query(request, "value").unwrap_or_default();
                bucket.set(key, value.into_bytes()).await?;
                Ok(json!({}))
            }
            "/kv/append" => {
                let item = query(request, "item").unwrap_or_default();
                let mut cas = atomics::Cas::new(&bucket, key).await?;
                let mut retries = 0;
                loop {
                    let mut list = cas
                        .current()
                        .await?
                        .map(|v| String::from_utf8_lossy(&v).to_string())
                        .unwrap_or_default();
                    if !list.is_empty() {
                        list.push(',');
                    }
                    list.push_str(&item);
                    match atomics::swap(cas, list.clone().into_bytes()).await {
                        Ok(()) => return Ok(json!({"value": list, "retries": retries})),
                        Err(atomics::CasError::CasFailed(again)) => {
                            retries += 1;
                            cas = again;
                        }
                        Err(atomics::CasError::StoreError(error)) => return Err(error),
                    }
                }
            }
            _ => Err(store::Error::Other(format!("no such operation {path}"))),
        }
    }

    /// GETs `url`: its status and body (as JSON when it is).
    async fn get(url: &str) -> Result<(u16, Value), ErrorCode> {
        let request = http::Request::get(url)
            .body(String::new())
            .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
        let response = wasip3::http::client::send(http_into_wasi_request(request)?).await?;
        let response = http_from_wasi_response(response)?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        Ok((status, serde_json::from_str(&text).unwrap_or(json!(text))))
    }
}

fn main() {}
