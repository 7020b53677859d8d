//! HTTP/2 beside HTTP/1.1 on every listener, and TLS: clients no one here
//! wrote (curl, openssl) and hand-made frames for the abuses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;

use crate::harness::{
    Client, Porto, certificate, fixtures_compose, port_of, raw_exchange, tls_setting, value,
};

/// `curl -s` with `args`, answering its status line's protocol, status
/// and body (`-w` puts them after the body).
fn curl(args: &[&str]) -> (String, u16, String) {
    let output = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "20",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (version, status) = tail.split_once(' ').unwrap_or(("", "0"));
    (
        version.to_string(),
        status.parse().unwrap_or(0),
        body.to_string(),
    )
}

/// A client speaking HTTP/2 in plain text from its first byte (prior
/// knowledge, as gRPC clients do) and one speaking HTTP/1.1 reach the same
/// listener, for a WASI 0.2 and a WASI 0.3 service, and get the same
/// answers; the metrics tell the protocols apart.
#[test]
fn h2c_with_prior_knowledge_and_http1_share_every_listener() {
    let porto = Porto::start(&fixtures_compose(&[
        ("hello", "hello", ""),
        ("probe", "probe_p3", ""),
    ]));
    for (service, path, text) in [("hello", "/", "Hello"), ("probe", "/headers", "headers")] {
        let url = format!("{}{path}", porto.url(service));
        let (version, status, body) = curl(&["--http2-prior-knowledge", &url]);
        assert_eq!((version.as_str(), status), ("2", 200), "{service}: {body}");
        assert!(body.contains(text), "{service}: {body}");
        let (version, status, _) = curl(&["--http1.1", &url]);
        assert_eq!((version.as_str(), status), ("1.1", 200), "{service}");
    }
    let metrics = porto.metrics();
    for (protocol, service) in [("h2", "hello"), ("http/1.1", "hello"), ("h2", "probe")] {
        let labels = format!("service=\"{service}\",protocol=\"{protocol}\",tls=\"false\"");
        assert_eq!(
            value(&metrics, &format!("porto_connections_total{{{labels}}}")),
            1.0,
            "{protocol} {service}"
        );
        assert_eq!(
            value(
                &metrics,
                &format!("porto_listener_requests_total{{{labels}}}")
            ),
            1.0,
            "{protocol} {service}"
        );
    }
}

/// Over HTTP/2 a request gets what it gets over HTTP/1.1: a request id,
/// the body limit's 413 and the request timeout's 504 in porto's JSON
/// envelope, and the gateway's in-process call to its upstream.
#[test]
fn http2_requests_get_the_same_limits_ids_and_envelope() {
    let porto = Porto::start(&fixtures_compose(&[
        ("hello", "hello", ", max_body_bytes: 16"),
        ("slow", "sleep", ", request_timeout_ms: 300"),
    ]));
    let hello = porto.url("hello");
    let head = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--http2-prior-knowledge",
        ])
        .arg(format!("{hello}/"))
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("x-request-id: "), "{head}");

    // Without a declared length, porto finds the body too large once it
    // has all of it. (With one, porto answers at once and then resets the
    // stream with NO_ERROR to stop the upload, which curl 7.88 reports as
    // an error while uploading; the next test shows that exchange.)
    let big = "x".repeat(64);
    let (_, status, body) = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "content-length:",
        "--data",
        &big,
        &format!("{hello}/"),
    ]);
    assert_eq!(status, 413, "{body}");
    let envelope: serde_json::Value = serde_json::from_str(&body).expect("JSON envelope");
    assert_eq!(envelope["error"]["code"], "payload_too_large", "{body}");

    let (_, status, body) = curl(&[
        "--http2-prior-knowledge",
        &format!("{}/", porto.url("slow")),
    ]);
    assert_eq!(status, 504, "{body}");
    let envelope: serde_json::Value = serde_json::from_str(&body).expect("JSON envelope");
    assert_eq!(envelope["error"]["code"], "timeout", "{body}");
}

/// The gateway's REST API over HTTP/2: a user created and read back, the
/// gateway calling user-service in process as for HTTP/1.1.
#[test]
fn the_rest_api_answers_over_http2() {
    let porto = Porto::start_default();
    let gateway = porto.url("api-gateway");
    let (version, status, body) = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "content-type: application/json",
        "--data",
        r#"{"name":"Ada Lovelace","email":"ada@example.com"}"#,
        &format!("{gateway}/api/users"),
    ]);
    assert_eq!((version.as_str(), status), ("2", 201), "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).expect("user JSON");
    let id = created["id"].as_u64().expect("id");
    let (_, status, body) = curl(&[
        "--http2-prior-knowledge",
        &format!("{gateway}/api/users/{id}"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ada@example.com"), "{body}");
}

/// One HTTP/2 frame: type, flags, stream and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("small frame");
    let mut bytes = length.to_be_bytes()[1..].to_vec();
    bytes.extend([kind, flags]);
    bytes.extend(stream.to_be_bytes());
    bytes.extend(payload);
    bytes
}

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// An HPACK header block for `GET /` at `authority`, from the static table
/// (`:method GET`, `:scheme http`, `:path /`) and one literal.
fn get_block(authority: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84, 0x01];
    block.push(u8::try_from(authority.len()).expect("short authority"));
    block.extend(authority.as_bytes());
    block
}

/// An HPACK literal header (never indexed, names and values short).
fn literal(name: &str, value: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0x10, u8::try_from(name.len()).expect("short name")];
    bytes.extend(name.as_bytes());
    // A 7-bit length prefix, continued if longer.
    let mut length = value.len();
    if length < 127 {
        bytes.push(length as u8);
    } else {
        bytes.push(127);
        length -= 127;
        while length >= 128 {
            bytes.push((length % 128) as u8 | 0x80);
            length /= 128;
        }
        bytes.push(length as u8);
    }
    bytes.extend(value);
    bytes
}

/// Opens a plain-text HTTP/2 connection to `url` (`http://host:port`):
/// preface and empty SETTINGS sent.
fn open_h2(url: &str) -> TcpStream {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .expect("preface");
    stream
        .write_all(&frame(SETTINGS, 0, 0, &[]))
        .expect("settings");
    stream
}

/// Reads frames until GOAWAY (its error code) or the end of the
/// connection (None), within `within`; writes nothing.
fn goaway_or_close(stream: &mut TcpStream, within: Duration) -> Option<u32> {
    let deadline = Instant::now() + within;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        for (kind, _, _, payload) in take_frames(&mut buffer) {
            if kind == GOAWAY && payload.len() >= 8 {
                return Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buffer.extend(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return None,
        }
    }
    panic!("the connection was neither ended nor told to go away within {within:?}");
}

/// The whole frames at the front of `buffer`, taken out of it: type,
/// flags, stream and payload each.
fn take_frames(buffer: &mut Vec<u8>) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut frames = Vec::new();
    while buffer.len() >= 9 {
        let length = u32::from_be_bytes([0, buffer[0], buffer[1], buffer[2]]) as usize;
        if buffer.len() < 9 + length {
            break;
        }
        let id = u32::from_be_bytes([buffer[5], buffer[6], buffer[7], buffer[8]]) & 0x7fff_ffff;
        frames.push((buffer[3], buffer[4], id, buffer[9..9 + length].to_vec()));
        buffer.drain(..9 + length);
    }
    frames
}

/// Frames the server sends on the connection within `within`.
fn frames_within(stream: &mut TcpStream, within: Duration) -> Vec<(u8, u8, u32, Vec<u8>)> {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + within;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buffer.extend(&chunk[..n]),
            Err(_) => continue,
        }
    }
    take_frames(&mut buffer)
}

/// Other clients of `url` are served: 20 HTTP/1.1 requests in a row.
fn others_are_served(url: &str) {
    let client = Client::new(url);
    for _ in 0..20 {
        assert_eq!(client.get("/").status, 200);
    }
}

/// A request refused on its head (a declared body over the limit) is
/// answered in full before its stream is reset, and the reset says
/// NO_ERROR (RFC 9113, 8.1: stop sending, the answer stands): a reset
/// sent first would make the client lose the answer.
#[test]
fn a_request_refused_before_its_body_is_answered_before_its_stream_is_reset() {
    let porto = Porto::start(&fixtures_compose(&[(
        "hello",
        "hello",
        ", max_body_bytes: 16",
    )]));
    let url = porto.url("hello");
    let authority = url.trim_start_matches("http://");
    let mut client = open_h2(url);
    // POST, and content-length: 64 (static table entry 28), no body yet.
    let mut block = get_block(authority);
    block[0] = 0x83;
    block.extend([0x0f, 13, 2, b'6', b'4']);
    client
        .write_all(&frame(HEADERS, END_HEADERS, 1, &block))
        .expect("headers");
    let frames = frames_within(&mut client, Duration::from_secs(2));
    let on_stream: Vec<_> = frames.iter().filter(|f| f.2 == 1).collect();
    let answered = on_stream.iter().position(|f| f.0 == HEADERS);
    let reset = on_stream.iter().position(|f| f.0 == RST_STREAM);
    let answered = answered.unwrap_or_else(|| panic!("no answer: {on_stream:?}"));
    if let Some(reset) = reset {
        assert!(reset > answered, "reset before the answer: {on_stream:?}");
        assert_eq!(on_stream[reset].3, 0u32.to_be_bytes(), "reset code");
    }
    assert!(
        on_stream[answered..].iter().any(|f| f.1 & END_STREAM != 0),
        "the answer never ended: {on_stream:?}"
    );
}

const ENHANCE_YOUR_CALM: u32 = 0xb;

/// Rapid reset (CVE-2023-44487): a client opens streams and cancels each
/// at once, as fast as it can. porto ends that connection with GOAWAY
/// (ENHANCE_YOUR_CALM) and serves everyone else meanwhile.
#[test]
fn a_rapid_reset_flood_ends_its_connection_and_others_are_served() {
    let porto = Porto::start(&fixtures_compose(&[("hello", "hello", "")]));
    let url = porto.url("hello");
    let authority = url.trim_start_matches("http://");
    let mut abuser = open_h2(url);
    let mut flood = Vec::new();
    for stream in (1..4000u32).step_by(2) {
        flood.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            stream,
            &get_block(authority),
        ));
        flood.extend(frame(RST_STREAM, 0, stream, &0x8u32.to_be_bytes()));
    }
    // porto may close before all of it is written.
    let _ = abuser.write_all(&flood);
    let ended = goaway_or_close(&mut abuser, Duration::from_secs(10));
    assert!(
        ended.is_none_or(|code| code == ENHANCE_YOUR_CALM),
        "GOAWAY with error code {ended:?}"
    );
    others_are_served(url);
    let (version, status, _) = curl(&["--http2-prior-knowledge", &format!("{url}/")]);
    assert_eq!((version.as_str(), status), ("2", 200));
}

/// A CONTINUATION flood: a header block that never ends, frame after
/// frame. porto stops it at the header list limit and ends the connection
/// instead of buffering; everyone else is served.
#[test]
fn a_continuation_flood_ends_its_connection_and_others_are_served() {
    let porto = Porto::start(&fixtures_compose(&[("hello", "hello", "")]));
    let url = porto.url("hello");
    let authority = url.trim_start_matches("http://");
    let mut abuser = open_h2(url);
    let _ = abuser.write_all(&frame(HEADERS, END_STREAM, 1, &get_block(authority)));
    let piece = frame(CONTINUATION, 0, 1, &literal("x-flood", &[b'a'; 4000]));
    // 40 MB of header block if porto took it all.
    let flooding = std::thread::spawn({
        let mut abuser = abuser.try_clone().expect("clone");
        move || {
            for _ in 0..10_000 {
                if abuser.write_all(&piece).is_err() {
                    return;
                }
            }
        }
    });
    let ended = goaway_or_close(&mut abuser, Duration::from_secs(10));
    assert_ne!(ended, Some(0), "GOAWAY without an error: {ended:?}");
    let _ = flooding.join();
    others_are_served(url);
}

/// At shutdown an HTTP/2 connection is told GOAWAY and its request in
/// flight still gets its answer.
#[test]
fn an_http2_request_in_flight_finishes_during_the_drain() {
    let porto = Porto::start(&fixtures_compose(&[("probe", "probe_p3", "")]));
    let url = format!("{}/wait?ms=1500", porto.url("probe"));
    let request = std::thread::spawn(move || curl(&["--http2-prior-knowledge", &url]));
    porto.wait_for_in_flight("probe", 1);
    porto.terminate();
    let (version, status, body) = request.join().expect("curl thread");
    assert_eq!((version.as_str(), status), ("2", 200), "{body}");
}

/// A service with `x-porto.tls` serves HTTPS: HTTP/2 by ALPN, HTTP/1.1 to
/// clients asking for it, TLS 1.2 and 1.3 and nothing older; a client
/// failing its handshake is counted; a certificate replaced on disk is in
/// service within seconds, without a restart.
#[test]
fn tls_terminates_with_alpn_and_reloads_its_certificate() {
    let certs = tempfile::tempdir().expect("tempdir");
    certificate(certs.path(), "first");
    let extra = format!(", tls: {}", tls_setting(certs.path(), "first"));
    let porto = Porto::start(&fixtures_compose(&[("hello", "hello", &extra)]));
    let url = porto.url("hello");
    assert!(url.starts_with("https://"), "{url}");
    let https = format!("https://localhost:{}/", port_of(url));
    let ca = certs.path().join("ca.pem");
    let ca = ca.to_str().expect("utf-8 path");
    let (version, status, body) = curl(&["--cacert", ca, "--http2", &https]);
    assert_eq!((version.as_str(), status), ("2", 200), "{body}");
    assert!(body.contains("Hello"), "{body}");
    let (version, status, _) = curl(&["--cacert", ca, "--http1.1", &https]);
    assert_eq!((version.as_str(), status), ("1.1", 200));
    let (_, status, _) = curl(&["--cacert", ca, "--tlsv1.2", "--tls-max", "1.2", &https]);
    assert_eq!(status, 200, "TLS 1.2");
    let (_, status, _) = curl(&["--cacert", ca, "--tls-max", "1.1", &https]);
    assert_eq!(status, 0, "TLS 1.1 must be refused");
    // Plain text to a TLS listener is a failed handshake, not a request.
    let (_, status, _) = curl(&[&format!("http://127.0.0.1:{}/", port_of(url))]);
    assert_eq!(status, 0);
    let metrics = porto.metrics();
    assert!(
        value(
            &metrics,
            "porto_tls_handshake_failures_total{service=\"hello\"}"
        ) >= 2.0,
        "{metrics:?}"
    );
    // `--http2` and the TLS 1.2 client (curl asks for h2 by default).
    assert_eq!(
        value(
            &metrics,
            "porto_connections_total{service=\"hello\",protocol=\"h2\",tls=\"true\"}"
        ),
        2.0
    );

    // Rotated in place, as Kubernetes does with a mounted Secret.
    certificate(certs.path(), "second");
    std::fs::rename(
        certs.path().join("second.key"),
        certs.path().join("first.key"),
    )
    .expect("rotate key");
    std::fs::rename(
        certs.path().join("second.pem"),
        certs.path().join("first.pem"),
    )
    .expect("rotate cert");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let shown = Command::new("curl")
            .args(["-sv", "-o", "/dev/null", "--cacert", ca, &https])
            .output()
            .expect("curl");
        let said = String::from_utf8_lossy(&shown.stderr).to_string();
        if said.contains("CN=second") {
            break;
        }
        assert!(said.contains("CN=first"), "{said}");
        assert!(
            Instant::now() < deadline,
            "the new certificate never went into service"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A certificate file that is missing or not a certificate stops porto at
/// start with an error naming the file.
#[test]
fn a_missing_or_bad_certificate_is_an_error_at_start_naming_the_file() {
    let certs = tempfile::tempdir().expect("tempdir");
    certificate(certs.path(), "good");
    let bad = certs.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate\n").expect("write");
    let missing = certs.path().join("missing.pem");
    let key = certs.path().join("good.key");
    for cert in [&missing, &bad] {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("compose.yaml");
        let compose = fixtures_compose(&[(
            "hello",
            "hello",
            &format!(
                ", tls: {{cert: '{}', key: '{}'}}",
                cert.display(),
                key.display()
            ),
        )]);
        std::fs::write(&file, serde_yaml_ng::to_string(&compose).expect("yaml")).expect("write");
        let output = crate::harness::command_as_from_the_shell(crate::harness::PORTO)
            .args(["up", "--ephemeral-ports", "-f"])
            .arg(&file)
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--cache-dir")
            .arg(crate::harness::cache_dir())
            .output()
            .expect("run porto");
        assert!(!output.status.success());
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains(&cert.display().to_string()), "{said}");
        assert!(said.contains("hello: TLS"), "{said}");
    }
}

/// One HTTP/2 POST of `payload` with trailers to `url` + `path` (hyper's
/// client): the status, the body and the response's trailers.
fn post_with_trailers(url: &str, path: &str) -> (u16, Bytes, http::HeaderMap) {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
    let body = http_body_util::Full::new(Bytes::from_static(b"payload"))
        .with_trailers(Box::pin(async move { Some(Ok(trailers)) }));
    let request = http::Request::post(path).body(body).expect("request");
    let (status, _, body, trailers) = crate::harness::h2_exchange(url, request);
    (status, body, trailers)
}

/// Trailers end to end, for a WASI 0.2 and a WASI 0.3 guest: a request's
/// trailers reach the guest after its body and the trailers the guest
/// sets reach the client, over HTTP/2 and over HTTP/1.1 (chunked, to a
/// client that says `TE: trailers`).
#[test]
fn trailers_reach_the_guest_and_the_client_both_ways() {
    let porto = Porto::start(&fixtures_compose(&[
        ("wasip2", "trailers", ""),
        ("wasip3", "probe_p3", ""),
    ]));
    for service in ["wasip2", "wasip3"] {
        let url = porto.url(service);
        let (status, body, trailers) = post_with_trailers(url, "/trailers");
        assert_eq!(status, 200, "{service}");
        assert_eq!(body, "payload", "{service}");
        assert_eq!(
            trailers.get("echo-x-checksum").map(|v| v.as_bytes()),
            Some(&b"abc"[..]),
            "{service}: {trailers:?}"
        );
        assert_eq!(
            trailers.get("x-answer").map(|v| v.as_bytes()),
            Some(&b"trailing"[..]),
            "{service}: {trailers:?}"
        );

        let answer = raw_exchange(
            url.trim_start_matches("http://"),
            b"POST /trailers HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n7\r\npayload\r\n0\r\nx-checksum: abc\r\n\r\n",
        );
        let lowered = answer.to_lowercase();
        assert!(lowered.starts_with("http/1.1 200"), "{service}: {answer}");
        assert!(
            lowered.contains("echo-x-checksum: abc"),
            "{service}: {answer}"
        );
        assert!(
            lowered.contains("x-answer: trailing"),
            "{service}: {answer}"
        );
    }
}

/// An HTTP/2 connection with no stream open is closed once idle for 10 s,
/// as an idle HTTP/1.1 keep-alive one is, while one whose stream is still
/// being answered stays open past that.
#[test]
fn an_idle_http2_connection_is_closed_and_a_busy_one_is_not() {
    let porto = Porto::start(&fixtures_compose(&[("probe", "probe_p3", "")]));
    let url = porto.url("probe");
    let busy_url = format!("{url}/wait?ms=13000");
    let busy = std::thread::spawn(move || curl(&["--http2-prior-knowledge", &busy_url]));
    let opened = Instant::now();
    let mut idle = open_h2(url);
    let ended = goaway_or_close(&mut idle, Duration::from_secs(25));
    let after = opened.elapsed();
    assert!(ended.is_none_or(|code| code == 0), "GOAWAY {ended:?}");
    assert!(after >= Duration::from_secs(9), "closed after {after:?}");
    let (version, status, body) = busy.join().expect("curl thread");
    assert_eq!((version.as_str(), status), ("2", 200), "{body}");
}
