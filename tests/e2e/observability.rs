//! Metrics, `/status`, `porto ps` and JSON logs, checked against traffic
//! whose counts the test knows.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Client, PORTO, Porto, fixtures_compose, value};

#[test]
fn metrics_count_known_traffic() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    for _ in 0..3 {
        assert_eq!(api.get("/api/users/1").status, 200);
    }
    let created = api.post_json(
        "/api/users",
        &json!({"name": "Metric", "email": "metric@example.com"}),
    );
    assert_eq!(created.status, 201);
    for _ in 0..2 {
        assert_eq!(api.get("/api/nope").status, 404);
    }

    let m = porto.metrics();
    let requests = |service: &str, route: &str, status: u16| {
        value(
            &m,
            &format!(
                "porto_requests_total{{service=\"{service}\",route=\"{route}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(requests("api-gateway", "GET /api/users/:id", 200), 3.0);
    assert_eq!(requests("user-service", "GET /users/:id", 200), 3.0);
    assert_eq!(requests("api-gateway", "POST /api/users", 201), 1.0);
    assert_eq!(requests("user-service", "POST /users", 201), 1.0);
    assert_eq!(requests("api-gateway", "GET /api/nope", 404), 2.0);
    assert_eq!(
        value(
            &m,
            "porto_outbound_requests_total{service=\"api-gateway\",target=\"user-service\",outcome=\"in_process\"}"
        ),
        4.0
    );
    assert_eq!(
        value(
            &m,
            "porto_request_duration_seconds_count{service=\"api-gateway\",route=\"GET /api/users/:id\"}"
        ),
        3.0
    );
    // Each request got an instance: a new one or, as compose.yaml lets the
    // services reuse them, a kept one.
    assert_eq!(
        value(
            &m,
            "porto_instantiation_duration_seconds_count{service=\"user-service\"}"
        ) + value(&m, "porto_instance_reuses_total{service=\"user-service\"}"),
        4.0
    );
    assert_eq!(
        value(&m, "porto_instances_in_flight{service=\"api-gateway\"}"),
        0.0
    );
    // The new user took an id and claimed an email; nothing failed.
    assert!(
        value(
            &m,
            "porto_kv_operations_total{backend=\"embedded\",operation=\"increment\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &m,
            "porto_kv_operations_total{backend=\"embedded\",operation=\"compare_and_swap\"}"
        ) >= 1.0
    );
    let kv_errors: f64 = m
        .iter()
        .filter(|(series, _)| series.starts_with("porto_kv_errors_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(kv_errors, 0.0);
    // Every write reached the disk in some commit of the embedded store.
    let writes: f64 = [
        "set",
        "delete",
        "increment",
        "compare_and_swap",
        "set_many",
        "delete_many",
    ]
    .iter()
    .filter_map(|op| {
        m.get(&format!(
            "porto_kv_operations_total{{backend=\"embedded\",operation=\"{op}\"}}"
        ))
    })
    .sum();
    assert_eq!(value(&m, "porto_kv_commit_batch_size_sum"), writes);
    let commits = value(&m, "porto_kv_commit_batch_size_count");
    assert!(
        (1.0..=writes).contains(&commits),
        "{commits} commits of {writes} writes"
    );
}

/// A guest allowed `*` that calls 5,000 hosts it made up, and one allowed
/// nothing that tries the same, add no series per host: an outbound call
/// is labelled by the allow-list entry that let it out (`*`) or `other`,
/// so the number of series after 10,000 calls is what it was after two.
/// (127.a.b.c addresses with nothing listening: refused at once, and no
/// name lookups.)
#[test]
fn made_up_hosts_leave_the_number_of_series_bounded() {
    let porto = Porto::start(&fixtures_compose(&[
        ("open", "fanout", ", allow_hosts: ['*']"),
        ("closed", "fanout", ""),
    ]));
    let call = |service: &str, from: u32, count: u32| {
        let reply = Client::new(porto.url(service)).get(&format!("/?from={from}&count={count}"));
        assert_eq!(reply.status, 200, "{service}: {}", reply.body);
        let outcomes = reply.json();
        let total: u64 = outcomes
            .as_object()
            .map(|o| o.values().filter_map(Value::as_u64).sum())
            .unwrap_or_default();
        assert_eq!(total, u64::from(count), "{service}: {outcomes}");
        assert!(
            outcomes.get("status 200").is_none(),
            "{service} reached a made-up host: {outcomes}"
        );
    };
    call("open", 1, 1);
    call("closed", 1, 1);
    let before = porto.metrics();
    for batch in 0..5 {
        for service in ["open", "closed"] {
            call(service, 2 + batch * 1_000, 1_000);
        }
    }
    let after = porto.metrics();
    let targets = |service: &str| -> std::collections::BTreeSet<String> {
        let prefix = format!("porto_outbound_requests_total{{service=\"{service}\",target=\"");
        after
            .keys()
            .filter_map(|series| Some(series.strip_prefix(&prefix)?.split_once('"')?.0.to_string()))
            .collect()
    };
    assert_eq!(targets("open"), ["*".to_string()].into());
    assert_eq!(targets("closed"), ["other".to_string()].into());
    let calls: f64 = after
        .iter()
        .filter(|(series, _)| series.starts_with("porto_outbound_requests_total{"))
        .map(|(_, count)| count)
        .sum();
    assert_eq!(calls, 10_002.0);
    let new: Vec<&String> = after.keys().filter(|s| !before.contains_key(*s)).collect();
    assert!(new.is_empty(), "series added by made-up hosts: {new:?}");
}

/// Both ways a guest runs out of time are counted as `timeout` failures:
/// one that waits (sleep) and one that computes (spin, interrupted).
#[test]
fn timeouts_are_counted_as_timeout_failures() {
    let porto = Porto::start(&fixtures_compose(&[
        ("sleep", "sleep", ", request_timeout_ms: 300"),
        ("spin", "spin", ", request_timeout_ms: 300"),
    ]));
    for name in ["sleep", "spin"] {
        let reply = Client::new(porto.url(name)).get("/");
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (504, "timeout"),
            "{name}: {}",
            reply.body
        );
    }
    let m = porto.metrics();
    for name in ["sleep", "spin"] {
        assert_eq!(
            value(
                &m,
                &format!("porto_guest_failures_total{{service=\"{name}\",kind=\"timeout\"}}")
            ),
            1.0,
            "{name}"
        );
    }
}

#[test]
fn status_and_ps_report_every_service() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    for _ in 0..5 {
        assert_eq!(api.get("/api/users/2").status, 200);
    }
    let status = Client::new(porto.url("admin")).get("/status").json();
    assert_eq!(status["arch"], std::env::consts::ARCH);
    let services = status["services"].as_array().expect("services");
    let names: Vec<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["api-gateway", "order-service", "user-service"]);
    let gateway = &services[0];
    assert_eq!(gateway["served"], 5);
    assert_eq!(gateway["server_errors"], 0);
    assert_eq!(gateway["urls"][0].as_str(), Some(porto.url("api-gateway")));
    assert!(gateway["digest"].as_str().is_some_and(|d| d.len() == 71));
    assert!(gateway["p99_ms"].as_f64().is_some_and(|p| p > 0.0));
    assert_eq!(services[1]["served"], 0);
    assert_eq!(services[1]["p50_ms"], Value::Null);

    let admin = porto.url("admin").trim_start_matches("http://").to_string();
    let ps = Command::new(PORTO)
        .args(["ps", "--admin", &admin])
        .output()
        .expect("porto ps");
    assert!(ps.status.success());
    let table = String::from_utf8_lossy(&ps.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].starts_with("SERVICE"), "{table}");
    let gateway_line = lines
        .iter()
        .find(|l| l.starts_with("api-gateway"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(gateway_line.contains(porto.url("api-gateway").trim_start_matches("http://")));
    assert_eq!(gateway_line.split_whitespace().nth(3), Some("5"), "{table}");

    // --json: /status as it is, for scripts.
    let ps_json = Command::new(PORTO)
        .args(["ps", "--json", "--admin", &admin])
        .output()
        .expect("porto ps --json");
    assert!(ps_json.status.success());
    let listed: Value = serde_json::from_slice(&ps_json.stdout).expect("porto ps --json is JSON");
    let names: Vec<&str> = listed["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["api-gateway", "order-service", "user-service"]);
    assert_eq!(listed["services"][0]["served"], 5, "{listed}");

    let unreachable = Command::new(PORTO)
        .args(["ps", "--admin", "127.0.0.1:9"])
        .output()
        .expect("porto ps");
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("no porto answers"));
}

#[test]
fn guest_failures_are_counted_by_kind() {
    let porto = Porto::start(&fixtures_compose(&[
        ("trap", "trap", ""),
        ("silent", "silent", ""),
    ]));
    for service in ["trap", "silent"] {
        for _ in 0..2 {
            let reply = Client::new(porto.url(service)).get("/");
            assert_eq!(
                (reply.status, reply.error_code().as_str()),
                (500, "internal_error"),
                "{service}: {}",
                reply.body
            );
        }
    }
    let m = porto.metrics();
    for (service, kind) in [
        ("trap", "unreachable_code_reached"),
        // Returned without ever setting a response.
        ("silent", "no_response"),
    ] {
        assert_eq!(
            value(
                &m,
                &format!("porto_guest_failures_total{{service=\"{service}\",kind=\"{kind}\"}}")
            ),
            2.0
        );
        assert_eq!(
            value(
                &m,
                &format!(
                    "porto_requests_total{{service=\"{service}\",route=\"GET /\",status=\"500\"}}"
                )
            ),
            2.0
        );
    }
}

#[test]
fn json_logs_carry_service_and_request_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let compose = dir.path().join("compose.yaml");
    std::fs::write(
        &compose,
        serde_yaml_ng::to_string(&fixtures_compose(&[("panic", "panic", "")])).expect("yaml"),
    )
    .expect("write");
    let mut child = Command::new(PORTO)
        .args([
            "up",
            "--ephemeral-ports",
            "--no-admin",
            "--log-format",
            "json",
            "-f",
        ])
        .arg(&compose)
        .arg("--data")
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("porto");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = stdout
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some("panic")).then(|| fields.next().map(str::to_string))?
        })
        .expect("panic service URL");
    // porto must be able to go on printing.
    std::thread::spawn(move || for _ in stdout {});
    let reply = Client::new(&url).send("GET", "/", &[("x-request-id", "json-log-1")], None);
    assert_eq!(reply.status, 500);
    let _ = child.kill();
    let _ = child.wait();
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let events: Vec<Value> = stderr
        .lines()
        .map_while(Result::ok)
        .take_while(|_| Instant::now() < deadline)
        .map(|line| {
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
        })
        .collect();
    let guest_line = events
        .iter()
        .find(|e| {
            e["target"] == "guest"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("panicked"))
        })
        .unwrap_or_else(|| panic!("no guest panic line in {events:#?}"));
    assert_eq!(guest_line["service"], "panic");
    assert_eq!(guest_line["request_id"], "json-log-1");
    assert!(guest_line["level"].is_string() && guest_line["timestamp"].is_string());
    // The request's span rides along: its trace id ties the line to a trace.
    assert!(
        guest_line["span"]["trace_id"]
            .as_str()
            .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())),
        "{guest_line}"
    );
    assert_eq!(guest_line["span"]["route"], "GET /", "{guest_line}");
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// The admin page as headless Chromium renders it after its scripts ran.
fn rendered(url: &str) -> String {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `make test-tools` installs it"
    );
    let profile = tempfile::tempdir().expect("tempdir");
    let output = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            // Three polls of /status in virtual time.
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(output.status.success(), "chromium failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of `<td class="{class}">` in the row of `service`.
fn cell(dom: &str, service: &str, class: &str) -> String {
    let row_start = dom
        .find(&format!("<tr id=\"svc-{service}\">"))
        .unwrap_or_else(|| panic!("no row for {service} in {dom}"));
    let row = &dom[row_start..];
    let row = &row[..row.find("</tr>").unwrap_or(row.len())];
    let marker = format!("<td class=\"{class}\">");
    let start = row
        .find(&marker)
        .map(|i| i + marker.len())
        .unwrap_or_else(|| panic!("no {class} cell in {row}"));
    row[start..]
        .split("</td>")
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_status_page_shows_live_numbers() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    for _ in 0..7 {
        assert_eq!(api.get("/api/users/1").status, 200);
    }
    assert_eq!(api.get("/api/users/999").status, 404);
    let dom = rendered(&format!("{}/", porto.url("admin")));
    assert!(
        dom.contains(&format!("on {}", std::env::consts::ARCH)),
        "{dom}"
    );
    assert_eq!(cell(&dom, "api-gateway", "served"), "8");
    assert_eq!(cell(&dom, "user-service", "served"), "8");
    assert_eq!(cell(&dom, "order-service", "served"), "0");
    assert_eq!(cell(&dom, "api-gateway", "errors"), "0 (0.0%)");
    assert_eq!(cell(&dom, "order-service", "p50"), "–");
    let p99: f64 = cell(&dom, "api-gateway", "p99")
        .parse()
        .expect("p99 is a number");
    assert!(p99 > 0.0);
    assert!(
        cell(&dom, "api-gateway", "rate").parse::<f64>().is_ok(),
        "the rate is computed after a second poll"
    );
}
