//! Fixture: Tries every way out of the sandbox a guest has — the
//! filesystem, TCP, UDP, name lookup, the host's environment — and reports
//! what each attempt got. `?port=N` names a loopback TCP port to dial.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use std::collections::BTreeMap;

use service_kit::{ApiError, ApiRequest, ApiResponse};
use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
use wasip2::sockets::{instance_network, ip_name_lookup, tcp_create_socket, udp_create_socket};

fn main() {}

async fn handle(request: ApiRequest) -> Result<ApiResponse, ApiError> {
    let port = request
        .query
        .as_deref()
        .and_then(|q| q.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(9);
    let mut outcomes = BTreeMap::new();
    outcomes.insert("read_dir", outcome(std::fs::read_dir("/").map(drop)));
    outcomes.insert("read_file", outcome(std::fs::read("/etc/passwd").map(drop)));
    outcomes.insert("write_file", outcome(std::fs::write("porto-escape", b"x")));
    outcomes.insert("tcp_connect", tcp_connect(port));
    outcomes.insert("udp_bind", udp_bind());
    outcomes.insert("name_lookup", name_lookup());
    outcomes.insert(
        "environment",
        std::env::vars()
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
            .join(","),
    );
    Ok(ApiResponse::ok(&outcomes))
}

fn outcome<E: std::fmt::Display>(result: Result<(), E>) -> String {
    match result {
        Ok(()) => "allowed".into(),
        Err(e) => format!("denied: {e}"),
    }
}

fn loopback(port: u16) -> IpSocketAddress {
    IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    })
}

fn tcp_connect(port: u16) -> String {
    let network = instance_network::instance_network();
    let socket = match tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Ok(socket) => socket,
        Err(e) => return format!("denied: {e:?}"),
    };
    if let Err(e) = socket.start_connect(&network, loopback(port)) {
        return format!("denied: {e:?}");
    }
    socket.subscribe().block();
    outcome(
        socket
            .finish_connect()
            .map(drop)
            .map_err(|e| format!("{e:?}")),
    )
}

fn udp_bind() -> String {
    let network = instance_network::instance_network();
    let socket = match udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4) {
        Ok(socket) => socket,
        Err(e) => return format!("denied: {e:?}"),
    };
    if let Err(e) = socket.start_bind(&network, loopback(0)) {
        return format!("denied: {e:?}");
    }
    socket.subscribe().block();
    outcome(socket.finish_bind().map_err(|e| format!("{e:?}")))
}

fn name_lookup() -> String {
    let network = instance_network::instance_network();
    let stream = match ip_name_lookup::resolve_addresses(&network, "localhost") {
        Ok(stream) => stream,
        Err(e) => return format!("denied: {e:?}"),
    };
    loop {
        match stream.resolve_next_address() {
            Ok(Some(_)) => return "allowed".into(),
            Ok(None) => return "denied: no addresses".into(),
            Err(wasip2::sockets::network::ErrorCode::WouldBlock) => stream.subscribe().block(),
            Err(e) => return format!("denied: {e:?}"),
        }
    }
}

service_kit::export_service!(crate::handle);
