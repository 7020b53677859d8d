//! W3C trace context: one trace across the gateway and the services it
//! calls, exported by OTLP to a collector on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Client, Porto, fixture_service, gateway_alone, read_head, stack};

/// A span as the test needs it.
#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
}

/// An OTLP/HTTP receiver: every `POST /v1/traces` body, parsed.
fn collector() -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(document) = serde_json::from_slice(&body)
            {
                let _ = sender.send(document);
            }
            let _ = reader.get_mut().write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    (url, receiver)
}

/// Every span the collector received (porto exports them as it stops).
fn spans_received(received: &mpsc::Receiver<Value>) -> Vec<Span> {
    let documents: Vec<Value> = received
        .recv_timeout(Duration::from_secs(10))
        .into_iter()
        .chain(received.try_iter())
        .collect();
    spans(&documents)
}

fn spans(documents: &[Value]) -> Vec<Span> {
    documents
        .iter()
        .flat_map(|d| d["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .map(|s| Span {
            trace_id: s["traceId"].as_str().unwrap_or_default().to_string(),
            span_id: s["spanId"].as_str().unwrap_or_default().to_string(),
            parent: s["parentSpanId"].as_str().unwrap_or_default().to_string(),
            name: s["name"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

#[test]
fn one_trace_spans_the_gateway_and_its_upstreams() {
    let (endpoint, received) = collector();
    let mut porto = Porto::start_with_env(&stack(), &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    let api = porto.gateway();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let reply = api.send(
        "GET",
        "/api/users/1/orders",
        &[("traceparent", &format!("00-{trace}-{client_span}-01"))],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    // A request without one starts its own trace.
    assert_eq!(api.get("/api/users/2").status, 200);
    // Spans are flushed when porto stops.
    assert!(porto.stop().success());

    let spans = spans_received(&received);
    let ours: Vec<Span> = spans
        .iter()
        .filter(|s| s.trace_id == trace)
        .cloned()
        .collect();
    let gateway = named(&ours, "api-gateway GET /api/users/:id/orders");
    assert_eq!(gateway.parent, client_span);
    for upstream in ["user-service", "order-service"] {
        let call = named(&ours, &format!("api-gateway -> {upstream}"));
        assert_eq!(call.parent, gateway.span_id, "{upstream} call");
        let served = ours
            .iter()
            .find(|s| s.name.starts_with(&format!("{upstream} GET ")))
            .unwrap_or_else(|| panic!("no {upstream} span in {ours:#?}"));
        assert_eq!(served.parent, call.span_id, "{upstream} request");
    }

    let started = named(&spans, "api-gateway GET /api/users/:id");
    assert_ne!(started.trace_id, trace);
    assert!(started.parent.is_empty(), "a new trace has no parent");
    let own: Vec<Span> = spans
        .iter()
        .filter(|s| s.trace_id == started.trace_id)
        .cloned()
        .collect();
    let call = named(&own, "api-gateway -> user-service");
    assert_eq!(call.parent, started.span_id);
    assert_eq!(
        named(&own, "user-service GET /users/:id").parent,
        call.span_id
    );
}

/// A call to a host on the network carries the trace too: the upstream
/// (a listener of the test's, the gateway's user-service) receives a
/// `traceparent` in the client's trace whose parent is the gateway's
/// outbound span.
#[test]
fn a_call_to_a_network_host_carries_the_trace() {
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream_host = upstream.local_addr().expect("addr").to_string();
    let (heads, received_heads) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in upstream.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let _ = heads.send(read_head(&mut reader));
            let _ = reader.get_mut().write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    let compose = gateway_alone(&format!("http://{upstream_host}"), &[&upstream_host]);
    let (endpoint, received) = collector();
    let mut porto = Porto::start_with_env(&compose, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);

    let trace = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    porto.gateway().send(
        "GET",
        "/api/users/1",
        &[("traceparent", &format!("00-{trace}-{client_span}-01"))],
        None,
    );
    let head = received_heads
        .recv_timeout(Duration::from_secs(10))
        .expect("the gateway called the upstream");
    let traceparent = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(name, _)| name.eq_ignore_ascii_case("traceparent"))
                .map(|(_, value)| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no traceparent in\n{head}"));
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1], trace, "the client's trace");
    assert!(porto.stop().success());

    let spans = spans_received(&received);
    let call = named(&spans, "api-gateway -> 127.0.0.1");
    assert_eq!(call.trace_id, trace);
    assert_eq!(
        parts[2], call.span_id,
        "the upstream's parent is the outbound span"
    );
    let served = named(&spans, "api-gateway GET /api/users/:id");
    assert_eq!(call.parent, served.span_id);
    assert_eq!(served.parent, client_span);
}

/// One trace crosses the two guest worlds in process, either way: the
/// WASI 0.2 gateway calling a WASI 0.3 user-service, and a WASI 0.3 guest
/// calling a WASI 0.2 one.
#[test]
fn a_trace_crosses_wasip2_and_wasip3_services_in_process() {
    let (endpoint, received) = collector();
    let mut compose = stack();
    let services = compose["services"].as_mapping_mut().expect("services");
    services.insert(
        "user-service".into(),
        fixture_service("probe_p3", ", allow_services: [counter]"),
    );
    services.insert("counter".into(), fixture_service("counter", ""));
    let mut porto = Porto::start_with_env(&compose, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    let into_p3 = "11111111111111111111111111111111";
    let out_of_p3 = "22222222222222222222222222222222";
    let reply = porto.gateway().send(
        "GET",
        "/api/users/1",
        &[("traceparent", &format!("00-{into_p3}-00f067aa0ba902b7-01"))],
        None,
    );
    assert!(reply.status > 0);
    let reply = Client::new(porto.url("user-service")).send(
        "GET",
        "/call?url=http://counter/",
        &[(
            "traceparent",
            &format!("00-{out_of_p3}-00f067aa0ba902b7-01"),
        )],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(porto.stop().success());

    let spans = spans_received(&received);
    let trace =
        |id: &str| -> Vec<Span> { spans.iter().filter(|s| s.trace_id == id).cloned().collect() };
    let first = trace(into_p3);
    let call = named(&first, "api-gateway -> user-service");
    let served = named(&first, "user-service GET /users/:id");
    assert_eq!(served.parent, call.span_id, "{first:#?}");
    let second = trace(out_of_p3);
    let call = named(&second, "user-service -> counter");
    assert_eq!(
        call.parent,
        named(&second, "user-service GET /call").span_id
    );
    assert_eq!(
        named(&second, "counter GET /").parent,
        call.span_id,
        "{second:#?}"
    );
}
