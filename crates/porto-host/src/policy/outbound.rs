//! Where a guest's outbound request goes: the rule of `depends_on`,
//! `x-porto.allow_services` and `x-porto.allow_hosts`, and the label the
//! call is counted under.
//!
//! A request to a service of this process (`http://user-service`, any
//! port) is handed to it in-process, if the caller may call it; one to any
//! other host goes over the network only if an `allow_hosts` entry lets it
//! out. A label names a target only from fixed sets: a service, the entry
//! that allowed a network call (`*`, not whatever host a guest allowed `*`
//! made up), or `other` for a refused host that is not a service.

use crate::policy::service::ServiceConfig;

/// What happens to one outbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// To the service of that name, in this process.
    Service(&'a str),
    /// Over the network, let out by this `allow_hosts` entry; `h2c` when
    /// the entry says plain-text calls speak HTTP/2 with prior knowledge.
    Network { entry: &'a str, h2c: bool },
    /// Refused; `label` is what the refusal is counted under.
    Denied { label: &'a str, why: &'static str },
}

impl Route<'_> {
    /// The `target` label of `porto_outbound_requests_total`.
    pub(crate) fn label(&self) -> &str {
        match self {
            Self::Service(name) => name,
            Self::Network { entry, .. } => entry,
            Self::Denied { label, .. } => label,
        }
    }
}

/// Where a request of `caller` to `host` (lower-case) and `port` goes;
/// `is_service` says whether this process runs a service of that name.
pub(crate) fn route<'a>(
    caller: &'a ServiceConfig,
    host: &'a str,
    port: Option<u16>,
    is_service: bool,
) -> Route<'a> {
    if is_service {
        return if caller.allowed_services.contains(host) {
            Route::Service(host)
        } else {
            Route::Denied {
                label: host,
                why: "not in depends_on or x-porto.allow_services",
            }
        };
    }
    match allowing_entry(&caller.allowed_hosts, host, port) {
        Some(entry) => Route::Network {
            entry,
            h2c: entry.starts_with(H2C),
        },
        None => Route::Denied {
            label: "other",
            why: "not a service and not in x-porto.allow_hosts",
        },
    }
}

/// The prefix of an `allow_hosts` entry whose plain-text calls speak
/// HTTP/2 with prior knowledge (h2c), as gRPC servers without TLS expect:
/// nothing in an `http://` URL can say so, and probing would cost every
/// call a round trip.
const H2C: &str = "h2c://";

/// The `allow_hosts` entry that lets `host[:port]` out, if one does
/// (`host` allows every port, `host:port` only that one, `*` any host: for
/// a front end whose network is already the boundary, as a container's is;
/// `h2c://` before a host or `host:port` matches as without it).
fn allowing_entry<'a>(allowed: &'a [String], host: &str, port: Option<u16>) -> Option<&'a str> {
    allowed
        .iter()
        .find(|entry| {
            let entry = entry.strip_prefix(H2C).unwrap_or(entry);
            match entry.rsplit_once(':') {
                _ if entry == "*" => true,
                Some((h, p)) if p.parse::<u16>().is_ok() => {
                    h.eq_ignore_ascii_case(host) && port == p.parse().ok()
                }
                _ => entry.eq_ignore_ascii_case(host),
            }
        })
        .map(String::as_str)
}

/// Whether `entry` is an `allow_hosts` entry porto can match: `*`, or a
/// host name or IP address (IPv6 in brackets) with or without `:port`,
/// either of the last two after `h2c://`.
/// Anything else (a URL, two entries in one string, whitespace) would match
/// no request under porto and something else under the shim, which splits
/// its variable at commas (`"api.example.com,*"` would let everything out
/// on a cluster); front ends refuse it where they read the configuration.
pub fn check_allow_host(entry: &str) -> Result<(), String> {
    if entry == "*" {
        return Ok(());
    }
    let entry = match entry.strip_prefix(H2C) {
        Some("*") => {
            return Err("h2c:// takes a host or host:port, not `*`".to_string());
        }
        Some(host) => host,
        None => entry,
    };
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => (host, Some(port)),
        _ => (entry, None),
    };
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!(
            "{port:?} is not a port (use `host` or `host:port`, 0 to 65535)"
        ));
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    let ipv6 = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    if host.is_empty() || !(ipv6 || host.chars().all(name_char)) {
        return Err(
            "not a host: use `*`, `host`, `host:port` or `h2c://host:port` (one entry each, no other scheme, no path)"
                .to_string(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn allow_host_entries_are_hosts_ports_or_a_star() {
        for good in [
            "*",
            "api.example.com",
            "api.example.com:443",
            "10.0.0.7:8080",
            "[::1]:80",
            "order_service",
            "h2c://grpc.internal:50051",
            "h2c://grpc.internal",
        ] {
            assert_eq!(super::check_allow_host(good), Ok(()), "{good}");
        }
        for bad in [
            "api.example.com,*",
            "https://api.example.com",
            "h2c://*",
            "h2c://",
            "h2c://grpc.internal:50051/",
            "h2://grpc.internal",
            "api.example.com/v1",
            "api.example.com:https",
            "api.example.com:70000",
            " api.example.com",
            "",
            ":80",
            "user@host",
        ] {
            assert!(super::check_allow_host(bad).is_err(), "{bad:?} accepted");
        }
    }

    use super::*;

    fn caller(services: &[&str], hosts: &[&str]) -> ServiceConfig {
        let mut config = ServiceConfig::new("caller");
        config.allowed_services = services.iter().map(|s| s.to_string()).collect();
        config.allowed_hosts = hosts.iter().map(|s| s.to_string()).collect();
        config
    }

    #[test]
    fn an_allowed_service_is_called_in_process_on_any_port() {
        let config = caller(&["user-service"], &["*"]);
        assert_eq!(
            route(&config, "user-service", Some(9999), true),
            Route::Service("user-service")
        );
    }

    #[test]
    fn a_service_not_depended_on_is_denied_even_under_a_wildcard() {
        let config = caller(&[], &["*"]);
        let routed = route(&config, "user-service", None, true);
        assert!(matches!(routed, Route::Denied { .. }), "{routed:?}");
        assert_eq!(routed.label(), "user-service");
    }

    #[test]
    fn host_rules() {
        let config = caller(&[], &["api.example.com", "cache:6380"]);
        let allows =
            |host, port| matches!(route(&config, host, port, false), Route::Network { .. });
        assert!(allows("api.example.com", Some(443)));
        assert!(allows("api.example.com", None));
        assert!(allows("cache", Some(6380)));
        assert!(!allows("cache", Some(6379)));
        assert!(!allows("cache", None));
        assert!(!allows("evil.example.com", None));
        assert!(!allows("api.example.com.evil", None));
        assert!(matches!(
            route(&caller(&[], &[]), "anything", None, false),
            Route::Denied { label: "other", .. }
        ));
    }

    #[test]
    fn entries_match_regardless_of_case() {
        let config = caller(&[], &["API.Example.com"]);
        assert_eq!(
            route(&config, "api.example.com", None, false),
            Route::Network {
                entry: "API.Example.com",
                h2c: false
            }
        );
    }

    #[test]
    fn an_h2c_entry_matches_its_host_and_says_h2c() {
        let config = caller(&[], &["h2c://grpc:50051", "web"]);
        assert_eq!(
            route(&config, "grpc", Some(50051), false),
            Route::Network {
                entry: "h2c://grpc:50051",
                h2c: true
            }
        );
        assert!(matches!(
            route(&config, "grpc", Some(80), false),
            Route::Denied { .. }
        ));
        assert_eq!(
            route(&config, "web", None, false),
            Route::Network {
                entry: "web",
                h2c: false
            }
        );
    }

    #[test]
    fn a_call_is_labelled_by_the_entry_that_allowed_it() {
        let config = caller(&[], &["cache:6380", "*"]);
        assert_eq!(
            route(&config, "cache", Some(6380), false).label(),
            "cache:6380"
        );
        assert_eq!(route(&config, "cache", Some(6379), false).label(), "*");
        assert_eq!(route(&config, "h1.example", None, false).label(), "*");
    }

    /// However many hosts a guest makes up, its calls get labels from a
    /// fixed set: the entries, the services, `other`.
    #[test]
    fn made_up_hosts_get_no_label_of_their_own() {
        let allowed = caller(&[], &["*"]);
        let denied = caller(&[], &["api.example.com"]);
        let labels: std::collections::BTreeSet<String> = (0..5_000)
            .flat_map(|i| {
                let host = format!("h{i}.example");
                [
                    route(&allowed, &host, None, false).label().to_string(),
                    route(&denied, &host, None, false).label().to_string(),
                ]
            })
            .collect();
        let expected = std::collections::BTreeSet::from(["*".to_string(), "other".to_string()]);
        assert_eq!(labels, expected);
    }
}
