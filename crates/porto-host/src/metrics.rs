//! What porto counts, in Prometheus' conventions (`prometheus-client`).
//!
//! One [`Metrics`] per process, shared by the runtime, the key-value
//! backend and the outbound hook; the admin listener renders it. Label
//! values are bounded: services and backends are fixed at start-up, an
//! outbound call is named by the service or `allow_hosts` entry it went to
//! (`other` when refused), and paths are reduced to a route class
//! ([`route_class`]) with a cap on how many distinct classes a service may
//! create, so neither a client probing random paths nor a guest calling
//! made-up hosts can grow the registry without bound.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

use crate::policy::reuse::Retired;

/// Distinct route classes kept per service; later ones count as `other`.
const MAX_ROUTES_PER_SERVICE: usize = 64;
/// The route class of requests past a service's cap.
const OTHER_ROUTE: &str = "other";
/// Path segments a route class keeps.
const MAX_ROUTE_SEGMENTS: usize = 4;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub service: String,
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub service: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServiceLabels {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KvLabels {
    pub backend: &'static str,
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutboundLabels {
    pub service: String,
    pub target: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FailureLabels {
    pub service: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RetiredLabels {
    pub service: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ShedLabels {
    pub service: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProtocolLabels {
    pub service: String,
    pub protocol: &'static str,
    pub tls: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub(crate) struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: HistogramFamily<RouteLabels>,
    pub in_flight: Family<ServiceLabels, Gauge>,
    pub instantiation: HistogramFamily<ServiceLabels>,
    pub kv_operations: Family<KvLabels, Counter>,
    pub kv_errors: Family<KvLabels, Counter>,
    pub outbound: Family<OutboundLabels, Counter>,
    pub guest_failures: Family<FailureLabels, Counter>,
    pub shed: Family<ShedLabels, Counter>,
    pub instance_reuses: Family<ServiceLabels, Counter>,
    pub instances_retired: Family<RetiredLabels, Counter>,
    pub kv_commit_batch_size: Histogram,
    pub connections: Family<ProtocolLabels, Counter>,
    pub listener_requests: Family<ProtocolLabels, Counter>,
    pub failed_handshakes: Family<ServiceLabels, Counter>,
}

/// Registers `metric` and returns the handle porto keeps of it.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~13 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

fn instantiation_histogram() -> Histogram {
    // 1 µs to ~65 ms: instantiation from a pre-instantiated component is
    // a few microseconds; anything in the milliseconds is worth seeing.
    Histogram::new(exponential_buckets(0.000_001, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("porto");
        let requests = registered(
            &mut registry,
            "requests",
            "Requests answered, by service, route class and status",
            Family::default(),
        );
        let request_duration = registered(
            &mut registry,
            "request_duration_seconds",
            "Time from request to response head, by service and route class",
            Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        );
        let in_flight = registered(
            &mut registry,
            "instances_in_flight",
            "Instances handling a request right now",
            Family::default(),
        );
        let instantiation = registered(
            &mut registry,
            "instantiation_duration_seconds",
            "Time to instantiate a service's component for one request",
            Family::new_with_constructor(instantiation_histogram as fn() -> Histogram),
        );
        let kv_operations = registered(
            &mut registry,
            "kv_operations",
            "Key-value operations, by backend and operation",
            Family::default(),
        );
        let kv_errors = registered(
            &mut registry,
            "kv_errors",
            "Key-value operations that failed, by backend and operation",
            Family::default(),
        );
        let outbound = registered(
            &mut registry,
            "outbound_requests",
            "Outgoing wasi:http requests, by calling service, target and outcome",
            Family::default(),
        );
        let guest_failures = registered(
            &mut registry,
            "guest_failures",
            "Requests a guest did not answer: traps by kind, timeouts, missing responses",
            Family::default(),
        );
        let shed = registered(
            &mut registry,
            "requests_shed",
            "Requests refused with 503 before a guest ran, by service and the limit reached",
            Family::default(),
        );
        let instance_reuses = registered(
            &mut registry,
            "instance_reuses",
            "Requests served by a kept instance instead of a fresh one (max_instance_reuse)",
            Family::default(),
        );
        let instances_retired = registered(
            &mut registry,
            "instances_retired",
            "Instances not kept, or no longer kept, for reuse, by service and reason",
            Family::default(),
        );
        let kv_commit_batch_size = registered(
            &mut registry,
            "kv_commit_batch_size",
            "Write operations made durable by one commit of the embedded store (group commit)",
            Histogram::new(exponential_buckets(1.0, 2.0, 11)),
        );
        let connections = registered(
            &mut registry,
            "connections",
            "Client connections accepted, by service, protocol (http/1.1, h2) and TLS",
            Family::default(),
        );
        let listener_requests = registered(
            &mut registry,
            "listener_requests",
            "Requests received from clients (not in-process calls), by service, protocol and TLS",
            Family::default(),
        );
        let failed_handshakes = registered(
            &mut registry,
            "tls_handshake_failures",
            "Client connections that failed or timed out in their TLS handshake, by service",
            Family::default(),
        );
        Self {
            connections,
            listener_requests,
            failed_handshakes,
            registry,
            requests,
            request_duration,
            in_flight,
            instantiation,
            kv_operations,
            kv_errors,
            outbound,
            guest_failures,
            shed,
            instance_reuses,
            instances_retired,
            kv_commit_batch_size,
        }
    }

    /// The OpenMetrics text exposition of everything above.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Counts a connection; returns the counter of its requests, looked up
    /// once per connection instead of per request.
    pub(crate) fn opened_connection(
        &self,
        service: &str,
        protocol: &'static str,
        tls: bool,
    ) -> Counter {
        let labels = ProtocolLabels {
            service: service.to_string(),
            protocol,
            tls: if tls { "true" } else { "false" },
        };
        self.connections.get_or_create(&labels).inc();
        self.listener_requests.get_or_create_owned(&labels)
    }

    pub(crate) fn failed_handshake(&self, service: &str) {
        self.failed_handshakes
            .get_or_create(&ServiceLabels {
                service: service.to_string(),
            })
            .inc();
    }

    /// `service`'s handles to the metrics every instance touches, looked
    /// up once instead of by label on every request.
    pub(crate) fn for_service(&self, service: &str) -> ServiceMetrics {
        let labels = ServiceLabels {
            service: service.to_string(),
        };
        ServiceMetrics {
            in_flight: self.in_flight.get_or_create_owned(&labels),
            instantiation: self.instantiation.get_or_create_owned(&labels),
            reused: self.instance_reuses.get_or_create_owned(&labels),
        }
    }

    /// Counts one answered request of `service`, whose request series
    /// `series` holds. Every request but the first of its route class and
    /// status takes a read lock and two lookups by `&str`: no label is
    /// built, nothing allocated.
    pub(crate) fn observe_request(
        &self,
        service: &str,
        series: &RequestSeries,
        route: &str,
        status: u16,
        took: Duration,
    ) {
        let seconds = took.as_secs_f64();
        if let Ok(routes) = series.routes.read()
            && let Some(known) = routes.get(route)
            && let Some(requests) = known.requests(status)
        {
            requests.inc();
            known.duration.observe(seconds);
            return;
        }
        let mut routes = series.routes.write().unwrap_or_else(|p| p.into_inner());
        // Past the cap, a new class counts as `other`, which is made like
        // any other the first time.
        let route = if routes.contains_key(route) || routes.len() < MAX_ROUTES_PER_SERVICE {
            route
        } else {
            OTHER_ROUTE
        };
        let known = routes
            .entry(route.to_string())
            .or_insert_with(|| RouteSeries {
                duration: self.request_duration.get_or_create_owned(&RouteLabels {
                    service: service.to_string(),
                    route: route.to_string(),
                }),
                by_status: Vec::new(),
            });
        let requests = match known.requests(status) {
            Some(requests) => requests.clone(),
            None => {
                let requests = self.requests.get_or_create_owned(&RequestLabels {
                    service: service.to_string(),
                    route: route.to_string(),
                    status: status.to_string(),
                });
                known.by_status.push((status, requests.clone()));
                requests
            }
        };
        requests.inc();
        known.duration.observe(seconds);
    }

    pub(crate) fn guest_failure(&self, service: &str, kind: &str) {
        self.guest_failures
            .get_or_create(&FailureLabels {
                service: service.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Counts `count` instances of `service` not kept for `reason` (none:
    /// no series is made).
    pub(crate) fn retired(&self, service: &str, reason: Retired, count: usize) {
        if count == 0 {
            return;
        }
        self.instances_retired
            .get_or_create(&RetiredLabels {
                service: service.to_string(),
                reason: reason.label(),
            })
            .inc_by(count as u64);
    }

    /// Counts one request refused at a capacity limit.
    pub(crate) fn shed(&self, service: &str, reason: &'static str) {
        self.shed
            .get_or_create(&ShedLabels {
                service: service.to_string(),
                reason,
            })
            .inc();
    }

    pub(crate) fn outbound(&self, service: &str, target: &str, outcome: &'static str) {
        self.outbound
            .get_or_create(&OutboundLabels {
                service: service.to_string(),
                target: target.to_string(),
                outcome,
            })
            .inc();
    }
}

/// One service's series of the per-instance metrics.
#[derive(Clone)]
pub(crate) struct ServiceMetrics {
    pub in_flight: Gauge,
    pub instantiation: Histogram,
    pub reused: Counter,
}

/// One service's request counters and latency histograms, by route class
/// (at most [`MAX_ROUTES_PER_SERVICE`]) and status, kept as handles so a
/// request finds its series without building labels.
#[derive(Default)]
pub(crate) struct RequestSeries {
    routes: RwLock<HashMap<String, RouteSeries>>,
}

struct RouteSeries {
    duration: Histogram,
    /// Few per route: a short list beats a map.
    by_status: Vec<(u16, Counter)>,
}

impl RouteSeries {
    fn requests(&self, status: u16) -> Option<&Counter> {
        self.by_status
            .iter()
            .find_map(|(s, counter)| (*s == status).then_some(counter))
    }
}

/// Counts one running instance for as long as it lives.
pub(crate) struct InFlight(Gauge);

impl InFlight {
    pub(crate) fn enter(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /users/7/orders?x=1` → `GET /users/:id/orders`: numeric segments
/// become `:id`, other segments that do not look like a route name become
/// `:x`, and only the first four segments count.
pub(crate) fn route_class(method: &http::Method, path: &str) -> String {
    let mut class = String::with_capacity(method.as_str().len() + path.len().min(64) + 8);
    class.push_str(method.as_str());
    class.push(' ');
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    for segment in segments.by_ref().take(MAX_ROUTE_SEGMENTS) {
        class.push('/');
        if segment.bytes().all(|b| b.is_ascii_digit()) {
            class.push_str(":id");
        } else if segment.len() <= 32
            && segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || matches!(b, b'_' | b'-' | b'.'))
        {
            class.push_str(segment);
        } else {
            class.push_str(":x");
        }
    }
    if class.ends_with(' ') {
        class.push('/');
    } else if segments.next().is_some() {
        class.push_str("/…");
    }
    class
}

/// `UnreachableCodeReached` → `unreachable_code_reached`.
pub(crate) fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn route_classes_collapse_ids_and_odd_segments() {
        assert_eq!(route_class(&Method::GET, "/"), "GET /");
        assert_eq!(route_class(&Method::GET, "/users/7"), "GET /users/:id");
        assert_eq!(
            route_class(&Method::GET, "/api/users/12/orders"),
            "GET /api/users/:id/orders"
        );
        assert_eq!(
            route_class(&Method::POST, "/users/%00ABC"),
            "POST /users/:x"
        );
        assert_eq!(route_class(&Method::GET, "/a/b/c/d/e"), "GET /a/b/c/d/…");
        assert_eq!(
            route_class(&Method::GET, "/openapi.yaml"),
            "GET /openapi.yaml"
        );
    }

    #[test]
    fn route_classes_per_service_are_capped() {
        let (metrics, series) = (Metrics::new(), RequestSeries::default());
        for i in 0..MAX_ROUTES_PER_SERVICE + 10 {
            let route = format!("GET /r{}", "a".repeat(i % 30 + 1) + &"b".repeat(i / 30));
            metrics.observe_request("svc", &series, &route, 200, Duration::from_millis(1));
            // A known class stays itself past the cap.
            metrics.observe_request("svc", &series, "GET /ra", 404, Duration::from_millis(1));
        }
        let text = metrics.render();
        assert!(text.contains("route=\"other\""), "{text}");
        let classes = text
            .lines()
            .filter(|l| l.starts_with("porto_requests_total{"))
            .count();
        // Every class with 200, `GET /ra` with 404 too, and `other`.
        assert_eq!(classes, MAX_ROUTES_PER_SERVICE + 2);
        let ra_404 = format!(
            "porto_requests_total{{service=\"svc\",route=\"GET /ra\",status=\"404\"}} {}",
            MAX_ROUTES_PER_SERVICE + 10
        );
        assert!(text.contains(&ra_404), "{text}");
    }

    #[test]
    fn renders_openmetrics_text() {
        let (metrics, series) = (Metrics::new(), RequestSeries::default());
        for _ in 0..2 {
            metrics.observe_request(
                "users",
                &series,
                "GET /users/:id",
                200,
                Duration::from_micros(300),
            );
        }
        metrics.guest_failure("users", &snake_case("UnreachableCodeReached"));
        let text = metrics.render();
        assert!(text.contains(
            "porto_requests_total{service=\"users\",route=\"GET /users/:id\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "porto_guest_failures_total{service=\"users\",kind=\"unreachable_code_reached\"} 1"
        ));
        assert!(text.ends_with("# EOF\n"));
    }
}
