//! WASI 0.3 components (`wasi:http/handler@0.3.x`), told apart from WASI
//! 0.2 ones by their exports and served by the same listeners, limits and
//! metrics, several requests at once per instance.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::{Client, Porto, Reply, fixtures_compose, value};

/// A WASI 0.3 hello built with the `wasip3` crate, as Spin 4 and wasmCloud
/// 2.5 users build them, is served: status, body and porto's request id.
#[test]
fn a_wasip3_hello_is_served() {
    let porto = Porto::start(&fixtures_compose(&[("hello", "hello_p3", "")]));
    let client = Client::new(porto.url("hello"));
    for _ in 0..3 {
        let reply = client.get("/");
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body, "Hello, WASI 0.3!\n");
        assert!(
            reply
                .header("x-request-id")
                .is_some_and(|id| !id.is_empty())
        );
    }
}

/// A WASI 0.3 guest sees the request's own headers but none of the ones
/// wasi:http keeps from guests (hop-by-hop, proxy credentials, Host,
/// whose authority it has in the URI).
#[test]
fn a_wasip3_guest_sees_its_request_headers_but_not_the_forbidden_ones() {
    let porto = probe("");
    let client = Client::new(porto.url("probe"));
    let reply = client.send(
        "GET",
        "/headers",
        &[
            ("x-visible", "yes"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
        ],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let headers = &reply.json()["headers"];
    assert_eq!(headers["x-visible"], "yes", "{headers}");
    for hidden in [
        "proxy-authorization",
        "keep-alive",
        "proxy-connection",
        "host",
    ] {
        assert!(
            headers.get(hidden).is_none(),
            "{hidden} reached the guest: {headers}"
        );
    }
}

fn probe(extra: &str) -> Porto {
    Porto::start(&fixtures_compose(&[("probe", "probe_p3", extra)]))
}

/// `n` GETs of `path(i)` at once; the replies in order.
fn at_once(client: &Client, n: usize, path: impl Fn(usize) -> String + Sync) -> Vec<Reply> {
    staggered(client, n, Duration::ZERO, path)
}

/// `n` GETs of `path(i)`, each sent `gap` after the one before, without
/// waiting for answers; the replies in order.
pub fn staggered(
    client: &Client,
    n: usize,
    gap: Duration,
    path: impl Fn(usize) -> String + Sync,
) -> Vec<Reply> {
    std::thread::scope(|scope| {
        let sent: Vec<_> = (0..n)
            .map(|i| {
                let (client, path) = (client.clone(), &path);
                scope.spawn(move || {
                    std::thread::sleep(gap * i as u32);
                    client.get(&path(i))
                })
            })
            .collect();
        sent.into_iter()
            .map(|reply| reply.join().expect("request thread"))
            .collect()
    })
}

fn instances(replies: &[Reply]) -> BTreeSet<String> {
    replies
        .iter()
        .map(|reply| {
            reply.json()["instance"]
                .as_str()
                .expect("instance")
                .to_string()
        })
        .collect()
}

/// By default one WASI 0.3 instance serves up to 16 requests at once:
/// requests that come in while the instance's others wait (on a clock, an
/// upstream) join them in it rather than starting instances of their own.
/// Each server worker thread has instances of its own (a request never
/// crosses threads), so 8 requests spread over the workers share one
/// instance per worker. (Requests that arrive together while no instance
/// is ready each start one, as under `wasmtime serve`.)
#[test]
fn one_instance_serves_requests_at_once() {
    let porto = probe("");
    let client = Client::new(porto.url("probe"));
    assert_eq!(client.get("/").status, 200, "warm up one instance");
    let replies = staggered(&client, 8, Duration::from_millis(100), |i| {
        format!("/wait?ms={}", 1500 - 100 * i)
    });
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let most = replies
        .iter()
        .map(|reply| reply.json()["most_at_once"].as_u64().expect("most_at_once"))
        .max();
    let instances = instances(&replies);
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(
        most >= Some(8u64.div_ceil(workers as u64)) && instances.len() <= workers,
        "requests were not served together: at most {most:?} at once, {} instances, {workers} workers",
        instances.len()
    );
}

/// Concurrency per instance is capped by `max_instance_concurrency`, and
/// the instance's life by `max_instance_reuse`.
#[test]
fn concurrency_and_reuse_follow_their_keys() {
    let porto = probe(", max_instance_concurrency: 2, max_instance_reuse: 3");
    let client = Client::new(porto.url("probe"));
    let replies = at_once(&client, 6, |_| "/wait?ms=500".into());
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.json()["most_at_once"].as_u64() <= Some(2),
            "{}",
            reply.body
        );
        assert!(reply.json()["served"].as_u64() <= Some(3), "{}", reply.body);
    }
    assert!(instances(&replies).len() >= 2, "6 requests, 3 per instance");
    // One after another: 3 per instance, then a fresh one.
    let porto = probe(", max_instance_reuse: 3");
    let client = Client::new(porto.url("probe"));
    let served: Vec<u64> = (0..4)
        .map(|_| client.get("/").json()["served"].as_u64().expect("served"))
        .collect();
    assert_eq!(served, [1, 2, 3, 1]);
}

/// Every request keeps its own trace and id while 8 share an instance:
/// each waits a different time, then calls another service in process,
/// and the call carries that request's trace, not another's.
#[test]
fn requests_sharing_an_instance_each_call_out_under_their_own_trace() {
    let porto = Porto::start(&fixtures_compose(&[
        ("front", "probe_p3", ", allow_services: [back]"),
        ("back", "probe_p3", ""),
    ]));
    let client = Client::new(porto.url("front"));
    // One instance of each, warm: requests that all find none start one
    // each.
    assert_eq!(client.get("/call?url=http://back/").status, 200);
    let trace = |i: usize| format!("{:032x}", 0xabc0_0000 + i);
    let replies = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..8)
            .map(|i| {
                let client = client.clone();
                let traceparent = format!("00-{}-{:016x}-01", trace(i), i + 1);
                scope.spawn(move || {
                    client.send(
                        "GET",
                        &format!("/call?url=http://back/headers&ms={}", 50 * (8 - i)),
                        &[("traceparent", traceparent.as_str())],
                        None,
                    )
                })
            })
            .collect();
        sent.into_iter()
            .map(|reply| reply.join().expect("request thread"))
            .collect::<Vec<_>>()
    });
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.status, 200, "{}", reply.body);
        let json = reply.json();
        let upstream = json["body"]["headers"]["traceparent"]
            .as_str()
            .unwrap_or_else(|| panic!("no traceparent upstream: {}", reply.body));
        assert_eq!(
            upstream.split('-').nth(1),
            Some(trace(i).as_str()),
            "request {i}'s call went out under another trace: {}",
            reply.body
        );
    }
    assert!(
        replies
            .iter()
            .filter_map(|reply| reply.json()["most_at_once"].as_u64())
            .max()
            >= Some(2),
        "the requests never shared an instance"
    );
}

/// A trap ends the instance it happens in: its request is answered 500,
/// and the next request gets a fresh instance.
#[test]
fn a_trap_is_answered_and_the_next_request_gets_a_fresh_instance() {
    let porto = probe("");
    let client = Client::new(porto.url("probe"));
    let before = client.get("/").json()["instance"].clone();
    let trapped = client.get("/trap");
    assert_eq!(trapped.status, 500, "{}", trapped.body);
    assert!(trapped.body.contains("\"error\""), "{}", trapped.body);
    let after = client.get("/");
    assert_eq!(after.status, 200, "{}", after.body);
    assert_ne!(after.json()["instance"], before);
    assert_eq!(after.json()["served"], 1);
    // Counted as the trap it was, as for WASI 0.2 guests.
    let m = porto.metrics();
    assert_eq!(
        value(
            &m,
            "porto_guest_failures_total{service=\"probe\",kind=\"unreachable_code_reached\"}"
        ),
        1.0
    );
}

/// A request that never yields runs out of time (504); the instance it
/// held is ended and the service goes on serving.
#[test]
fn an_endless_loop_times_out_and_the_service_goes_on() {
    let porto = probe(", request_timeout_ms: 500");
    let client = Client::new(porto.url("probe"));
    let looped = client.get("/spin");
    assert_eq!(looped.status, 504, "{}", looped.body);
    let after = client.get("/");
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(after.json()["served"], 1);
    let m = porto.metrics();
    assert_eq!(
        value(
            &m,
            "porto_guest_failures_total{service=\"probe\",kind=\"timeout\"}"
        ),
        1.0
    );
}

/// An instance whose memory grew past `reuse_max_memory_mib` takes no more
/// requests.
#[test]
fn an_instance_grown_past_its_memory_bound_is_retired() {
    let porto = probe(", reuse_max_memory_mib: 8");
    let client = Client::new(porto.url("probe"));
    let grown = client.get("/grow?mib=12");
    assert_eq!(grown.status, 200, "{}", grown.body);
    let after = client.get("/");
    assert_eq!(after.json()["served"], 1, "{}", after.body);
    assert_ne!(after.json()["instance"], grown.json()["instance"]);
}

/// `max_concurrency` still bounds the service's requests in flight,
/// whatever an instance could take: beyond it, 503.
#[test]
fn max_concurrency_refuses_beyond_its_slots() {
    let porto = probe(", max_concurrency: 1");
    let client = Client::new(porto.url("probe"));
    let replies = at_once(&client, 4, |_| "/wait?ms=1500".into());
    let statuses: Vec<u16> = replies.iter().map(|reply| reply.status).collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
}

/// One request waiting on a slow upstream does not hold up the others in
/// its instance: while it waits, its instance answers others (on fresh
/// connections, so some reach its worker thread), which see it in flight.
#[test]
fn a_request_waiting_on_an_upstream_does_not_hold_up_its_instance() {
    let porto = Porto::start(&fixtures_compose(&[
        ("front", "probe_p3", ", allow_services: [slow]"),
        ("slow", "slow", ""),
    ]));
    let url = porto.url("front").to_string();
    std::thread::scope(|scope| {
        let waiting = {
            let url = url.clone();
            scope.spawn(move || Client::new(&url).get("/call?url=http://slow/?ms=2000"))
        };
        std::thread::sleep(Duration::from_millis(300));
        let quick: Vec<Reply> = (0..8).map(|_| Client::new(&url).get("/")).collect();
        let waited = waiting.join().expect("request thread");
        assert_eq!(waited.status, 200, "{}", waited.body);
        assert_eq!(waited.json()["status"], 200, "{}", waited.body);
        let beside = quick
            .iter()
            .filter(|reply| {
                assert_eq!(reply.status, 200, "{}", reply.body);
                reply.json()["instance"] == waited.json()["instance"]
            })
            .collect::<Vec<_>>();
        assert!(
            !beside.is_empty(),
            "no request reached the waiting one's instance"
        );
        for reply in beside {
            assert!(
                reply.json()["most_at_once"].as_u64() >= Some(2),
                "{}",
                reply.body
            );
            assert!(
                reply.json()["served"].as_u64() > waited.json()["served"].as_u64(),
                "answered before the waiting request began: {}",
                reply.body
            );
        }
    });
}

/// `wasi:keyvalue@0.3.0-draft` (async) serves WASI 0.3 guests from the
/// service's own buckets: atomic increments and compare-and-swap lose no
/// update when requests share an instance, another service's bucket is
/// refused, and data is shared with the same bucket's other users.
#[test]
fn wasip3_guests_keep_data_through_async_keyvalue() {
    let porto = Porto::start(&fixtures_compose(&[
        ("kv", "probe_p3", ", buckets: [counts]"),
        ("peer", "probe_p3", ", buckets: [counts]"),
        ("other", "probe_p3", ", buckets: [elsewhere]"),
    ]));
    let client = Client::new(porto.url("kv"));
    assert_eq!(client.get("/").status, 200);
    let increments = at_once(&client, 12, |_| "/kv/incr?bucket=counts&key=hits".into());
    let mut values: Vec<u64> = increments
        .iter()
        .map(|reply| {
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply.json()["value"].as_u64().expect("value")
        })
        .collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (1..=12).collect::<Vec<u64>>(),
        "each increment seen once"
    );
    let appends = at_once(&client, 8, |i| {
        format!("/kv/append?bucket=counts&key=list&item={i}")
    });
    for reply in &appends {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let list = Client::new(porto.url("peer")).get("/kv/get?bucket=counts&key=list");
    let mut items: Vec<String> = list.json()["value"]
        .as_str()
        .expect("the list, read by the peer")
        .split(',')
        .map(str::to_string)
        .collect();
    items.sort();
    assert_eq!(items, (0..8).map(|i| i.to_string()).collect::<Vec<_>>());
    let refused = Client::new(porto.url("other")).get("/kv/get?bucket=counts&key=hits");
    assert_eq!(refused.status, 403, "{}", refused.body);
}

/// `porto build --interfaces` reads a WASI 0.3 component with the engine
/// made for it: its handler export and async key-value import are listed.
#[test]
fn build_lists_a_wasip3_components_interfaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("compose.yaml");
    let compose = fixtures_compose(&[("probe", "probe_p3", "")]);
    std::fs::write(&file, serde_yaml_ng::to_string(&compose).expect("yaml")).expect("write");
    let output = std::process::Command::new(crate::harness::PORTO)
        .args(["--log", "warn", "build", "--interfaces", "-f"])
        .arg(&file)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .output()
        .expect("run porto build");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(text.contains("export wasi:http/handler@0.3."), "{text}");
    assert!(
        text.contains("import wasi:keyvalue/store@0.3.0-draft"),
        "{text}"
    );
}
