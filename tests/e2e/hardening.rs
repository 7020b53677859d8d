//! What an attacker or a careless client tries against the real stack:
//! slow uploads, the largest composed read, racing deletes, heads hyper
//! cannot parse, HTTP/1.0, failed creates, foreign cursors, floods and the
//! memory they leave behind (SECURITY.md, "Attacks tried").

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Client, Porto, raw_exchange};

/// The longest a fast request may wait while slow clients hold connections.
const FAST_REQUEST_BOUND: Duration = Duration::from_secs(2);

fn create_user(gateway: &Client, name: &str, email: &str) -> u64 {
    let reply = gateway.post_json("/api/users", &json!({"name": name, "email": email}));
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_u64().expect("id")
}

/// An order for `user` of the most items the API allows, each with a
/// 64-byte SKU (60 × `letter` and its number).
fn order_of_100_items(user: u64, letter: char, quantity: u32, unit_price_cents: u64) -> Value {
    let items: Vec<Value> = (0..100)
        .map(|i| {
            let sku = format!("{}{i:04}", letter.to_string().repeat(60));
            json!({"sku": sku, "quantity": quantity, "unit_price_cents": unit_price_cents})
        })
        .collect();
    json!({"user_id": user, "items": items})
}

#[test]
fn of_concurrent_deletes_of_one_user_exactly_one_succeeds() {
    let porto = Porto::start_default();
    let gateway = porto.gateway();
    for round in 0..3 {
        let email = format!("doomed.{round}@x.example");
        let id = create_user(&gateway, "Doomed User", &email);
        let statuses: Vec<u16> = thread::scope(|scope| {
            let deletes: Vec<_> = (0..50)
                .map(|_| {
                    let gateway = gateway.clone();
                    scope.spawn(move || gateway.delete(&format!("/api/users/{id}")).status)
                })
                .collect();
            deletes
                .into_iter()
                .map(|d| d.join().expect("delete"))
                .collect()
        });
        let deleted = statuses.iter().filter(|&&s| s == 204).count();
        let missing = statuses.iter().filter(|&&s| s == 404).count();
        assert_eq!((deleted, missing), (1, 49), "{statuses:?}");
        assert_eq!(gateway.get(&format!("/api/users/{id}")).status, 404);
        // The address was released by the one delete that won.
        create_user(&gateway, "Reborn User", &email);
    }
}

#[test]
fn failed_creates_spend_no_ids() {
    let porto = Porto::start_default();
    let gateway = porto.gateway();
    let first = create_user(&gateway, "Taken Name", "taken@x.example");
    for _ in 0..50 {
        let reply = gateway.post_json(
            "/api/users",
            &json!({"name": "Copy Cat", "email": "TAKEN@x.example"}),
        );
        assert_eq!(reply.status, 409, "{}", reply.body);
    }
    let next = create_user(&gateway, "Next User", "next@x.example");
    assert_eq!(next, first + 1, "duplicate creates spent ids");
}

#[test]
fn a_cursor_is_only_good_for_the_collection_that_issued_it() {
    let porto = Porto::start_default();
    let gateway = porto.gateway();
    let users_cursor = gateway.get("/api/users?limit=1").json()["next_cursor"]
        .as_str()
        .expect("users have a next page")
        .to_string();
    let user = create_user(&gateway, "Cursor User", "cursor@x.example");
    for _ in 0..2 {
        let order = json!({"user_id": user, "items": [{"sku": "C-1", "quantity": 1, "unit_price_cents": 5}]});
        assert_eq!(gateway.post_json("/api/orders", &order).status, 201);
    }
    let orders_cursor = gateway.get("/api/orders?limit=1").json()["next_cursor"]
        .as_str()
        .expect("orders have a next page")
        .to_string();
    assert_eq!(
        gateway
            .get(&format!("/api/users?cursor={users_cursor}"))
            .status,
        200
    );
    assert_eq!(
        gateway
            .get(&format!("/api/orders?cursor={orders_cursor}"))
            .status,
        200
    );
    for path in [
        format!("/api/orders?cursor={users_cursor}"),
        format!("/api/users?cursor={orders_cursor}"),
    ] {
        let reply = gateway.get(&path);
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (400, "invalid_cursor"),
            "{path}"
        );
    }
}

/// The status line, headers (lower-cased names) and body of a raw answer.
fn parse_raw(answer: &str) -> (u16, Vec<(String, String)>, String) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:.200}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

#[test]
fn heads_the_http_layer_refuses_are_answered_in_the_envelope() {
    let porto = Porto::start_default();
    let address = porto.url("api-gateway").to_string();
    let oversized = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let cases: [(&str, &[u8], u16, &str); 6] = [
        ("bad Content-Length", b"POST /api/users HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n", 400, "bad_request"),
        ("two Content-Lengths", b"POST /api/users HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab", 400, "bad_request"),
        ("obs-fold", b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n  folded\r\n\r\n", 400, "bad_request"),
        ("NUL in a header", b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-a: a\x00b\r\n\r\n", 400, "bad_request"),
        ("not HTTP", b"HELLO THERE\r\n\r\n", 400, "bad_request"),
        ("oversized head", oversized.as_bytes(), 431, "headers_too_large"),
    ];
    for (what, request, status, code) in cases {
        let (got, headers, body) = parse_raw(&raw_exchange(&address, request));
        assert_eq!(got, status, "{what}");
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("content-type"), Some("application/json"), "{what}");
        assert!(
            header("x-request-id").is_some_and(|id| !id.is_empty()),
            "{what}"
        );
        let json: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
        assert_eq!(json["error"]["code"], code, "{what}");
    }
    // The stack is unharmed.
    assert_eq!(porto.gateway().get("/healthz").status, 200);
}

#[test]
fn http_1_0_requests_are_served_without_a_host_header() {
    let porto = Porto::start_default();
    let gateway = porto.url("api-gateway").to_string();
    let (status, _, body) = parse_raw(&raw_exchange(
        &gateway,
        b"GET /api/users/1 HTTP/1.0\r\n\r\n",
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("json")["id"], 1);
    let create = br#"{"name":"Old Client","email":"old.client@x.example"}"#;
    let mut request = format!(
        "POST /api/users HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        create.len()
    )
    .into_bytes();
    request.extend_from_slice(create);
    let (status, _, body) = parse_raw(&raw_exchange(&gateway, &request));
    assert_eq!(status, 201, "{body}");
    // HTTP/1.1 still needs its Host header (RFC 9112).
    let (status, headers, _) = parse_raw(&raw_exchange(
        &gateway,
        b"GET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n",
    ));
    assert_eq!(status, 400);
    assert!(headers.iter().any(|(n, _)| n == "x-request-id"));
}

/// porto's resident memory, from /proc.
fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// What an instance slot of the pool keeps resident after its instance
/// ends (porto-host's `KEEP_RESIDENT_BYTES`), so the next one starts
/// without page faults: the part of resident memory a burst leaves behind
/// by design, per instance that ran at its peak.
const KEPT_PER_INSTANCE_MIB: f64 = 2.0;
/// Concurrent clients of the burst below, each holding up to three
/// instances at once (gateway, user-service, order-service).
const BURST_CLIENTS: usize = 16;
/// Everything else a burst may leave: heap the allocator keeps, the
/// store's page cache for what the burst wrote.
const SETTLED_SLACK_MIB: f64 = 48.0;
/// How long after a burst resident memory must have settled.
const SETTLE_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn validation_messages_name_no_internal_types() {
    let porto = Porto::start_default();
    let gateway = porto.gateway();
    let bodies = [
        ("/api/users", json!(["Arr User", "arr@x.example"])),
        ("/api/users", json!({"name": 5, "email": "a@x.example"})),
        ("/api/orders", json!({"user_id": "1", "items": []})),
        (
            "/api/orders",
            json!({"user_id": 1, "items": [{"sku": "A", "quantity": "1", "unit_price_cents": 1}]}),
        ),
        (
            "/api/orders",
            json!({"user_id": 1, "items": [{"sku": "A", "quantity": -1, "unit_price_cents": 1.5}]}),
        ),
    ];
    for (path, body) in bodies {
        let reply = gateway.post_json(path, &body);
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (400, "validation_failed"),
            "{body}"
        );
        for internal in [
            "struct", "u32", "u64", "i64", "f64", "usize", "Create", "Order",
        ] {
            assert!(
                !reply.body.contains(internal),
                "{internal} in {}",
                reply.body
            );
        }
    }
}

/// Bounded by wall-clock time or machine load, or compiling: run one at a
/// time with nothing beside them (tests/e2e/main.rs).
mod alone {
    use super::*;

    #[test]
    fn slow_uploads_do_not_starve_fast_requests() {
        let porto = Porto::start_default();
        let address = porto
            .url("api-gateway")
            .trim_start_matches("http://")
            .to_string();
        // More stragglers than the gateway has instance slots (300): each sends
        // a head promising 1,000 bytes, a few of them, and then nothing.
        let stragglers: Vec<TcpStream> = (0..400)
            .map(|_| {
                let mut stream = TcpStream::connect(&address).expect("connect");
                stream
                    .write_all(b"POST /api/users HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"na")
                    .expect("write");
                stream
            })
            .collect();
        let gateway = porto.gateway();
        for round in 0..10 {
            let started = Instant::now();
            assert_eq!(gateway.get("/healthz").status, 200);
            let id = create_user(&gateway, "Fast Client", &format!("fast.{round}@x.example"));
            assert_eq!(gateway.get(&format!("/api/users/{id}")).status, 200);
            let took = started.elapsed();
            assert!(
                took < FAST_REQUEST_BOUND,
                "three fast requests took {took:?}"
            );
        }
        // A straggler is told, in the envelope, that its body never came, and
        // its connection is closed.
        let mut straggler = &stragglers[0];
        straggler
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut answer = String::new();
        straggler.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"request_timeout\""), "{answer}");
    }

    /// After bursts of large writes, composed reads and a connection flood,
    /// resident memory settles to its idle level plus what the pool keeps per
    /// instance of the burst's peak, plus slack (SECURITY.md, "Memory").
    #[test]
    fn memory_settles_to_a_stated_ceiling_after_bursts() {
        let porto = Porto::start_default();
        let gateway = porto.gateway();
        let user = create_user(&gateway, "Burst User", "burst@x.example");
        // Warm: every service has served, so the idle figure includes what a
        // running stack always holds.
        for _ in 0..20 {
            assert_eq!(
                gateway.get(&format!("/api/users/{user}/orders")).status,
                200
            );
        }
        let idle = resident_mib(porto.pid());
        let order = order_of_100_items(user, 'M', 1, 1);
        let address = porto
            .url("api-gateway")
            .trim_start_matches("http://")
            .to_string();
        thread::scope(|scope| {
            for _ in 0..BURST_CLIENTS {
                let (gateway, order) = (gateway.clone(), &order);
                scope.spawn(move || {
                    for _ in 0..40 {
                        assert_eq!(gateway.post_json("/api/orders", order).status, 201);
                        let reply = gateway.get(&format!("/api/users/{user}/orders"));
                        assert_eq!(reply.status, 200);
                    }
                });
            }
            // And a flood of connections, each sending half a request.
            let flood: Vec<TcpStream> = (0..500)
                .filter_map(|_| TcpStream::connect(&address).ok())
                .collect();
            for mut stream in &flood {
                let _ = stream.write_all(b"GET /api/users HTTP/1.1\r\nhost: x\r\n");
            }
        });
        let peak = resident_mib(porto.pid());
        let ceiling = idle + (BURST_CLIENTS * 3) as f64 * KEPT_PER_INSTANCE_MIB + SETTLED_SLACK_MIB;
        let ended = Instant::now();
        let mut now = peak;
        while now > ceiling && ended.elapsed() < SETTLE_WITHIN {
            thread::sleep(Duration::from_millis(250));
            now = resident_mib(porto.pid());
        }
        assert!(
            now <= ceiling,
            "resident memory {now:.0} MiB {:?} after the burst: over its ceiling of {ceiling:.0} MiB (idle {idle:.0} MiB, peak {peak:.0} MiB)",
            ended.elapsed()
        );
    }

    #[test]
    fn the_largest_composed_read_is_served_within_the_memory_limit() {
        let porto = Porto::start_default();
        let gateway = porto.gateway();
        let user = create_user(&gateway, "Big Buyer", "big.buyer@x.example");
        // The API's largest order: 100 items with 64-byte SKUs and the largest
        // quantity and price; the README promises up to 1,000 of them.
        let order = order_of_100_items(user, 'S', 10_000, 1_000_000_000);
        thread::scope(|scope| {
            for _ in 0..8 {
                let (gateway, order) = (gateway.clone(), &order);
                scope.spawn(move || {
                    for _ in 0..125 {
                        let reply = gateway.post_json("/api/orders", order);
                        assert_eq!(reply.status, 201, "{}", reply.body);
                    }
                });
            }
        });
        let url = format!("{}/api/users/{user}/orders", porto.url("api-gateway"));
        // Four at once, each well over 10 MB composed inside a gateway
        // instance limited to 128 MiB.
        thread::scope(|scope| {
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    let url = url.clone();
                    scope.spawn(move || {
                        let response = ureq::get(&url).call().expect("composed read");
                        assert_eq!(response.status(), 200);
                        let mut body = Vec::new();
                        response
                            .into_reader()
                            .take(64 * 1024 * 1024)
                            .read_to_end(&mut body)
                            .expect("body");
                        serde_json::from_slice::<Value>(&body).expect("json")
                    })
                })
                .collect();
            for reader in readers {
                let composed = reader.join().expect("reader");
                assert_eq!(composed["user"]["id"], user);
                let orders = composed["orders"].as_array().expect("orders");
                assert_eq!(orders.len(), 1000);
                assert!(
                    orders
                        .iter()
                        .all(|o| o["items"].as_array().map(Vec::len) == Some(100))
                );
                let ids: Vec<u64> = orders.iter().filter_map(|o| o["id"].as_u64()).collect();
                assert!(ids.windows(2).all(|w| w[0] < w[1]), "orders out of order");
            }
        });
    }
}
