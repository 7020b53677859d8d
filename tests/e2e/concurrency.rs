//! Concurrent requests never share an id, an email, or seed twice, and
//! a thousand at once each get an instance.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Client, Porto, Reply, fixtures_compose};

/// Runs `request(api, i)` for i in 0..n on n threads at once.
fn concurrently(
    porto: &Porto,
    n: usize,
    request: impl Fn(&Client, usize) -> Reply + Sync,
) -> Vec<Reply> {
    let api = &porto.gateway();
    let request = &request;
    thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| scope.spawn(move || request(api, i)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

/// Twelve first requests at once all see the one seed: the same page,
/// two users, and the next user created gets id 3 (a second seed would
/// have taken ids or added rows).
#[test]
fn concurrent_first_requests_seed_exactly_once() {
    let porto = Porto::start_default();
    let pages: Vec<serde_json::Value> = concurrently(&porto, 12, |api, _| api.get("/api/users"))
        .into_iter()
        .map(|page| {
            assert_eq!(page.status, 200, "{}", page.body);
            page.json()
        })
        .collect();
    let names: Vec<&str> = pages[0]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, vec!["Alice Johnson", "Bob Smith"]);
    for page in &pages {
        assert_eq!(page, &pages[0], "pages differ");
    }
    let next = porto.gateway().post_json(
        "/api/users",
        &json!({"name": "Third", "email": "third@example.com"}),
    );
    assert_eq!(next.status, 201, "{}", next.body);
    assert_eq!(next.json()["id"], 3, "{}", next.body);
    assert_eq!(
        porto.gateway().get("/api/users").json()["items"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}

#[test]
fn concurrent_creates_get_distinct_ids() {
    let porto = Porto::start_default();
    let replies = concurrently(&porto, 24, |api, i| {
        api.post_json(
            "/api/users",
            &json!({"name": format!("C{i}"), "email": format!("c{i}@example.com")}),
        )
    });
    let ids: Vec<u64> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", r.body);
            r.json()["id"].as_u64().expect("id")
        })
        .collect();
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate ids: {ids:?}");
}

#[test]
fn concurrent_creates_with_one_email_admit_one() {
    let porto = Porto::start_default();
    let replies = concurrently(&porto, 16, |api, i| {
        api.post_json(
            "/api/users",
            &json!({"name": format!("Twin {i}"), "email": "twin@example.com"}),
        )
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        15,
        "{statuses:?}"
    );
}

#[test]
fn concurrent_idempotent_posts_create_one_order() {
    let porto = Porto::start_default();
    let body =
        json!({"user_id": 1, "items": [{"sku": "ONCE", "quantity": 1, "unit_price_cents": 100}]})
            .to_string();
    let replies = concurrently(&porto, 10, |api, _| {
        api.send(
            "POST",
            "/api/orders",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "same-key"),
            ],
            Some(&body),
        )
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&201));
    let orders = porto.gateway().get("/api/orders").json();
    assert_eq!(
        orders["items"].as_array().map(Vec::len),
        Some(1),
        "exactly one order: {orders}"
    );
}

/// Bounded by wall-clock time or machine load, or compiling: run one at a
/// time with nothing beside them (tests/e2e/main.rs).
mod alone {
    use super::*;

    /// 1,000 requests inside instances at once, each with its own: the
    /// instance pool is sized in component instances (a Rust wasip2 component
    /// is three core instances; a pool of 1,000 core instances had refused
    /// every request past 333).
    #[test]
    fn a_thousand_requests_in_flight_each_get_an_instance() {
        const IN_FLIGHT: usize = 1000;
        // Long enough to open every connection first, even on a loaded machine.
        const HOLD_MS: u64 = 20_000;
        let compose =
            fixtures_compose(&[("slow", "slow", &format!(", max_concurrency: {IN_FLIGHT}"))]);
        // A socket per request in this process too, past the common soft
        // limit of 1,024 descriptors.
        let wanted = IN_FLIGHT as u64 + 512;
        let limit = rlimit::increase_nofile_limit(wanted).expect("raise the descriptor limit");
        assert!(limit >= wanted, "only {limit} file descriptors allowed");
        let porto = Porto::start(&compose);
        let address = porto.url("slow").trim_start_matches("http://").to_string();
        let started = Instant::now();
        let mut connections: Vec<TcpStream> = (0..IN_FLIGHT)
            .map(|_| {
                let mut stream = TcpStream::connect(&address).expect("connect");
                write!(
                    stream,
                    "GET /?ms={HOLD_MS} HTTP/1.1\r\nHost: slow\r\nConnection: close\r\n\r\n"
                )
                .expect("send");
                stream
            })
            .collect();
        let mut most = 0;
        while most < IN_FLIGHT && started.elapsed() < Duration::from_millis(HOLD_MS - 1000) {
            most = most.max(porto.in_flight("slow") as usize);
            thread::sleep(Duration::from_millis(100));
        }
        let mut refused = Vec::new();
        for stream in &mut connections {
            let mut reply = String::new();
            stream.read_to_string(&mut reply).expect("reply");
            if !reply.starts_with("HTTP/1.1 200") {
                refused.push(reply.lines().next().unwrap_or_default().to_string());
            }
        }
        assert!(
            refused.is_empty(),
            "{} of {IN_FLIGHT} not answered 200, e.g. {:?}",
            refused.len(),
            refused.first()
        );
        assert_eq!(
            most, IN_FLIGHT,
            "porto never had every request in flight at once"
        );
    }
}
