//! A guest that loops, hogs memory, traps, panics or stalls is contained:
//! its client gets a JSON error, and every other request is unaffected.

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Client, Porto, fixtures_compose, value};

/// Long enough that the control request below is surely served first.
const TIMEOUT_MS: u64 = 1500;

fn fixture_stack() -> Porto {
    Porto::start(&fixture_compose(&[
        ("spin", ""),
        ("hog", ""),
        ("trap", ""),
        ("panic", ""),
        ("sleep", ", max_concurrency: 2"),
        ("slow", ""),
        ("ok", ", max_body_bytes: 1024"),
        ("escape", ""),
    ]))
}

/// A Compose file serving each named fixture under its own name, with the
/// short timeout and small memory of these tests and `extra` x-porto keys.
fn fixture_compose(fixtures_and_extras: &[(&str, &str)]) -> serde_yaml_ng::Value {
    let extras: Vec<String> = fixtures_and_extras
        .iter()
        .map(|(_, extra)| format!(", request_timeout_ms: {TIMEOUT_MS}, max_memory_mib: 16{extra}"))
        .collect();
    let services: Vec<(&str, &str, &str)> = fixtures_and_extras
        .iter()
        .zip(&extras)
        .map(|((name, _), extra)| (*name, *name, extra.as_str()))
        .collect();
    fixtures_compose(&services)
}

fn client(porto: &Porto, name: &str) -> Client {
    Client::new(porto.url(name))
}

#[test]
fn unbounded_allocation_traps_with_500() {
    let porto = fixture_stack();
    let reply = client(&porto, "hog").get("/");
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (500, "internal_error"),
        "{}",
        reply.body
    );
    assert!(reply.header("x-request-id").is_some());
    assert_eq!(client(&porto, "ok").get("/").status, 200);
}

/// Each service gets its own `max_memory_mib`, and one without it the
/// documented default (128 MiB): the same component holding a fixed
/// amount succeeds under a limit above it and traps under one below.
#[test]
fn memory_limits_are_per_service_with_a_128_mib_default() {
    let porto = Porto::start(&fixtures_compose(&[
        ("small", "hog", ", max_memory_mib: 24"),
        ("large", "hog", ", max_memory_mib: 64"),
        ("default", "hog", ""),
    ]));
    for (service, mib, fits) in [
        ("small", 8, true),
        ("small", 40, false),
        ("large", 40, true),
        ("large", 80, false),
        ("default", 100, true),
        ("default", 140, false),
    ] {
        let reply = client(&porto, service).get(&format!("/?mib={mib}"));
        let expected = if fits { 200 } else { 500 };
        assert_eq!(
            reply.status, expected,
            "{service} holding {mib} MiB: {}",
            reply.body
        );
    }
}

/// The documented default request body limit (1 MiB) for a service that
/// sets none: a body of exactly 1 MiB is delivered, one byte more is 413.
/// (hello ignores bodies: service-kit guests have a smaller limit of their
/// own.)
#[test]
fn bodies_are_limited_to_1_mib_by_default() {
    let porto = Porto::start(&fixtures_compose(&[("hello", "hello", "")]));
    let ok = client(&porto, "hello");
    let mib = "x".repeat(1024 * 1024);
    let fits = ok.send("POST", "/", &[("content-type", "text/plain")], Some(&mib));
    assert_eq!(fits.status, 200, "{}", fits.body);
    // One byte more is refused from its declared length, before the body
    // is read (so the answer is read here without sending it).
    let address = porto.url("hello").trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "POST / HTTP/1.1\r\nhost: hello\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
        mib.len() + 1
    )
    .expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.300}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}

#[test]
fn traps_and_panics_are_500_json() {
    let porto = fixture_stack();
    for name in ["trap", "panic"] {
        let reply = client(&porto, name).get("/");
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (500, "internal_error"),
            "{name}: {}",
            reply.body
        );
        assert!(
            !reply.body.contains("wasm"),
            "{name}: internal detail leaked: {}",
            reply.body
        );
    }
    assert_eq!(client(&porto, "ok").get("/").status, 200);
}

#[test]
fn porto_limits_bodies_and_headers_at_its_edge() {
    let porto = fixture_stack();
    let ok = client(&porto, "ok");
    let body = "x".repeat(2048);
    let reply = ok.send(
        "POST",
        "/",
        &[("content-type", "application/json")],
        Some(&body),
    );
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (413, "payload_too_large")
    );
    let huge = "h".repeat(40 * 1024);
    let reply = ok.send("GET", "/", &[("x-huge", &huge)], None);
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (431, "headers_too_large")
    );
    // A streamed (chunked) body has no length to check up front.
    let address = porto.url("ok").trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let chunk = "c".repeat(512);
    let mut raw = String::from(
        "POST / HTTP/1.1\r\nhost: ok\r\nconnection: close\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    for _ in 0..4 {
        raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    raw.push_str("0\r\n\r\n");
    stream.write_all(raw.as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert_eq!(ok.get("/").status, 200);
}

#[test]
fn guests_cannot_reach_files_sockets_or_the_host_environment() {
    let porto = fixture_stack();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let reply = client(&porto, "escape").get(&format!("/?port={port}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let outcomes = reply.json();
    // No preopened directory: no path resolves. Sockets are refused by
    // porto's WASI context, and name lookup is switched off.
    for (attempt, why) in [
        ("read_dir", "No such file"),
        ("read_file", "No such file"),
        ("write_file", "No such file"),
        ("tcp_connect", "access-denied"),
        ("udp_bind", "access-denied"),
        ("name_lookup", "permanent-resolver-failure"),
    ] {
        let outcome = outcomes[attempt].as_str().unwrap_or_default();
        assert!(
            outcome.starts_with("denied") && outcome.contains(why),
            "{attempt}: {outcome}"
        );
    }
    assert_eq!(outcomes["environment"], "", "host environment leaked");
    assert!(
        listener.accept().is_err(),
        "the guest's connection reached the listener"
    );
}

/// Bounded by wall-clock time or machine load, or compiling: run one at a
/// time with nothing beside them (tests/e2e/main.rs).
mod alone {
    use super::*;

    #[test]
    fn excess_concurrency_is_503_with_retry_after_counted_not_logged_per_request() {
        let porto =
            Porto::start_logging(&fixture_compose(&[("sleep", ", max_concurrency: 2")]), &[]);
        let sleep = client(&porto, "sleep");
        const REFUSED: usize = 30;
        thread::scope(|scope| {
            let held: Vec<_> = (0..2)
                .map(|_| {
                    let sleep = sleep.clone();
                    scope.spawn(move || sleep.get("/"))
                })
                .collect();
            // Once both hold the two slots, the rest find none free within
            // their wait, as the two run to their timeout.
            porto.wait_for_in_flight("sleep", 2);
            let refused: Vec<_> = (0..REFUSED)
                .map(|_| {
                    let sleep = sleep.clone();
                    scope.spawn(move || sleep.get("/"))
                })
                .collect();
            for refused in refused {
                let refused = refused.join().expect("thread");
                assert_eq!(refused.status, 503, "{}", refused.body);
                assert_eq!(refused.error_code(), "overloaded");
                assert_eq!(refused.header("retry-after"), Some("1"));
            }
            for handle in held {
                assert_eq!(handle.join().expect("thread").status, 504);
            }
        });
        assert_eq!(
            value(
                &porto.metrics(),
                "porto_requests_shed_total{service=\"sleep\",reason=\"max_concurrency\"}"
            ),
            REFUSED as f64
        );
        // One report of the shedding, not a line per refused request.
        let log = porto.log();
        let reports = log.lines().filter(|l| l.contains("shedding load")).count();
        assert_eq!(reports, 1, "{log}");
        assert!(log.lines().count() < 10, "{log}");
    }

    #[test]
    fn excess_requests_wait_briefly_for_a_slot_in_turn() {
        let porto = Porto::start(&fixture_compose(&[("slow", ", max_concurrency: 1")]));
        let slow = client(&porto, "slow");
        let started = Instant::now();
        let statuses: Vec<u16> = thread::scope(|scope| {
            let requests: Vec<_> = (0..3)
                .map(|_| {
                    let slow = slow.clone();
                    scope.spawn(move || slow.get("/?ms=250").status)
                })
                .collect();
            requests
                .into_iter()
                .map(|r| r.join().expect("thread"))
                .collect()
        });
        // One instance at a time, each request waiting its turn, none refused.
        assert_eq!(statuses, [200, 200, 200]);
        assert!(
            started.elapsed() >= Duration::from_millis(750),
            "{:?}",
            started.elapsed()
        );
    }

    /// The instance pool is porto's, shared by every service: once it is full
    /// a request to any service is 503 `overloaded`, counted as shed by the
    /// pool, though each service is far below its own `max_concurrency`; and
    /// serving resumes when instances end.
    #[test]
    fn a_full_instance_pool_is_503_overloaded_for_every_service() {
        let porto = Porto::start_with_flags(
            &fixture_compose(&[("sleep", ", max_concurrency: 50"), ("ok", "")]),
            &["--instance-pool", "2"],
        );
        let sleep = client(&porto, "sleep");
        let ok = client(&porto, "ok");
        assert_eq!(ok.get("/").status, 200, "one instance at a time fits");
        thread::scope(|scope| {
            let held: Vec<_> = (0..2)
                .map(|_| {
                    let sleep = sleep.clone();
                    scope.spawn(move || sleep.get("/"))
                })
                .collect();
            porto.wait_for_in_flight("sleep", 2);
            // In flight is counted just before the instance is taken from the
            // pool: poll until the pool is seen full.
            let deadline = Instant::now() + Duration::from_millis(TIMEOUT_MS / 2);
            let refused = loop {
                let reply = ok.get("/");
                if reply.status != 200 || Instant::now() > deadline {
                    break reply;
                }
                thread::sleep(Duration::from_millis(10));
            };
            assert_eq!(refused.status, 503, "{}", refused.body);
            assert_eq!(refused.error_code(), "overloaded");
            assert_eq!(refused.header("retry-after"), Some("1"));
            let third = sleep.get("/");
            assert_eq!(
                (third.status, third.error_code().as_str()),
                (503, "overloaded")
            );
            for handle in held {
                assert_eq!(handle.join().expect("thread").status, 504);
            }
        });
        assert_eq!(ok.get("/").status, 200, "instances came back to the pool");
        let metrics = porto.metrics();
        for service in ["ok", "sleep"] {
            let series = format!(
                "porto_requests_shed_total{{service=\"{service}\",reason=\"instance_pool\"}}"
            );
            assert!(value(&metrics, &series) >= 1.0, "{series}");
        }
    }

    #[test]
    fn sigterm_drains_in_flight_requests_and_exits_0() {
        // Requests long enough to be surely running while the drain is looked at.
        let mut compose = fixture_compose(&[("slow", "")]);
        compose["services"]["slow"]["x-porto"]["request_timeout_ms"] = 10_000.into();
        let mut porto = Porto::start(&compose);
        let slow = client(&porto, "slow");
        let address = porto.url("slow").trim_start_matches("http://").to_string();
        thread::scope(|scope| {
            let in_flight: Vec<_> = (0..3)
                .map(|_| {
                    let slow = slow.clone();
                    scope.spawn(move || slow.get("/?ms=3000"))
                })
                .collect();
            porto.wait_for_in_flight("slow", 3);
            porto.terminate();
            // While those finish, nobody new gets in.
            let deadline = Instant::now() + Duration::from_millis(500);
            while std::net::TcpStream::connect(&address).is_ok() {
                assert!(
                    Instant::now() < deadline,
                    "still accepting connections 500 ms into the drain"
                );
                thread::sleep(Duration::from_millis(10));
            }
            assert!(
                in_flight.iter().all(|h| !h.is_finished()),
                "the in-flight requests ended before the listener closed"
            );
            let status = porto
                .wait_exit(Duration::from_secs(30))
                .expect("porto did not exit after SIGTERM");
            assert!(status.success(), "exit status {status:?}");
            for handle in in_flight {
                let reply = handle.join().expect("thread");
                assert_eq!(
                    reply.status, 200,
                    "an in-flight request was dropped: {}",
                    reply.body
                );
            }
        });
    }

    /// `--drain-timeout`: a request that outstays it is cut off and porto
    /// exits at the timeout, not when the request would have finished.
    #[test]
    fn the_drain_timeout_cuts_off_a_request_that_overstays() {
        let compose = fixtures_compose(&[("slow", "slow", ", request_timeout_ms: 30000")]);
        let mut porto = Porto::start_with_flags(&compose, &["--drain-timeout", "1"]);
        let client = client(&porto, "slow");
        thread::scope(|scope| {
            let overstaying = scope.spawn(move || client.try_send("GET", "/?ms=20000", &[], None));
            porto.wait_for_in_flight("slow", 1);
            let asked = Instant::now();
            porto.terminate();
            let status = porto
                .wait_exit(Duration::from_secs(10))
                .expect("porto did not exit at its drain timeout");
            let took = asked.elapsed();
            assert!(
                took >= Duration::from_millis(900) && took < Duration::from_secs(5),
                "exited {took:?} after SIGTERM with a 1 s drain timeout"
            );
            assert!(status.success(), "exit status {status:?}");
            match overstaying.join().expect("thread") {
                Ok(reply) => assert_ne!(reply.status, 200, "{}", reply.body),
                Err(closed) => eprintln!("overstaying request cut off: {closed}"),
            }
        });
    }

    #[test]
    fn an_endless_loop_is_stopped_with_504_while_others_are_served() {
        // The loops get 5 s, so a control that is served while they loop is
        // told apart from one served after them even on a loaded machine.
        let mut compose = fixture_compose(&[("spin", ""), ("ok", "")]);
        compose["services"]["spin"]["x-porto"]["request_timeout_ms"] = 5000.into();
        let porto = Porto::start(&compose);
        let spin = client(&porto, "spin");
        let ok = client(&porto, "ok");
        // One more looping guest than porto has workers, so whichever worker
        // the control request lands on is busy with one.
        let spinners = thread::available_parallelism().map_or(2, |n| n.get()) + 1;
        thread::scope(|scope| {
            let spinning: Vec<_> = (0..spinners)
                .map(|_| {
                    let spin = spin.clone();
                    scope.spawn(move || {
                        let reply = spin.get("/");
                        (reply, Instant::now())
                    })
                })
                .collect();
            // Every worker is busy with a looping guest; the control must still
            // be served, not queued behind them until they time out.
            porto.wait_for_in_flight("spin", spinners);
            assert_eq!(ok.get("/").status, 200);
            let control_done = Instant::now();
            for handle in spinning {
                let (reply, done) = handle.join().expect("thread");
                assert_eq!(
                    (reply.status, reply.error_code().as_str()),
                    (504, "timeout"),
                    "{}",
                    reply.body
                );
                assert!(
                    control_done < done,
                    "the control waited for the looping guests"
                );
            }
        });
        assert_eq!(ok.get("/").status, 200);
    }

    /// The documented default request timeout (30 s) for a service that sets
    /// none: a guest still working at 30 s is cut off with 504.
    #[test]
    fn requests_time_out_after_30_s_by_default() {
        let porto = Porto::start(&fixtures_compose(&[("slow", "slow", "")]));
        // The test client gives up at 30 s itself: a raw exchange waits longer.
        let address = porto.url("slow").trim_start_matches("http://").to_string();
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let started = Instant::now();
        stream
            .write_all(b"GET /?ms=40000 HTTP/1.1\r\nhost: slow\r\nconnection: close\r\n\r\n")
            .expect("send");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let took = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
        assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
        assert!(
            took >= Duration::from_millis(29_500) && took < Duration::from_secs(38),
            "cut off after {took:?}"
        );
    }

    #[test]
    fn a_stalled_guest_times_out_with_504() {
        let porto = fixture_stack();
        let started = Instant::now();
        let reply = client(&porto, "sleep").get("/");
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (504, "timeout"),
            "{}",
            reply.body
        );
        // Cut off at the deadline: not before it (an immediate 504 would be
        // a refusal, not a timeout), and not long after.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(TIMEOUT_MS - 50)
                && took < Duration::from_millis(TIMEOUT_MS * 5),
            "504 after {took:?}, the timeout being {TIMEOUT_MS} ms"
        );
    }
}
