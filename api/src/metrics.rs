//! Prometheus text metrics, kept by hand in atomics and one small map:
//! request counts by route and status, the engine's batch commits, the
//! WebSocket clients connected and Redis publish failures.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// (method, status) → requests answered, for one route.
type ByMethodStatus = HashMap<(Method, u16), u64>;

/// Every counter the intake exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Route template → (method, status) → count. Keyed by route first so
    /// that counting a request allocates nothing once its route is known.
    requests: Mutex<HashMap<String, ByMethodStatus>>,
    /// Group commits that succeeded.
    pub commits: AtomicU64,
    /// Group commits that failed (the engine then failed closed).
    pub commit_failures: AtomicU64,
    /// Workflows made durable by those commits.
    pub committed_workflows: AtomicU64,
    /// Time spent in successful group commits, in microseconds.
    pub commit_micros: AtomicU64,
    /// Commands the engine rejected.
    pub rejects: AtomicU64,
    /// Successful engine rebuilds from the journal.
    pub rebuilds: AtomicU64,
    /// WebSocket clients connected now (a gauge).
    pub ws_clients: AtomicI64,
    /// Messages (publishes and book snapshots) that did not reach Redis.
    pub redis_publish_failures: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, method: &Method, route: &str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let key = (method.clone(), status);
        match m.get_mut(route) {
            Some(by) => *by.entry(key).or_default() += 1,
            None => {
                m.insert(route.to_string(), HashMap::from([(key, 1)]));
            }
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE clearway_http_requests_total counter");
        let mut rows: Vec<(String, &str, u16, u64)> = Vec::new();
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for (route, by) in requests.iter() {
            for ((method, status), n) in by {
                rows.push((method.to_string(), route, *status, *n));
            }
        }
        rows.sort();
        for (method, route, status, n) in rows {
            let _ = writeln!(
                out,
                "clearway_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let counters = [
            ("clearway_engine_commits_total", &self.commits),
            (
                "clearway_engine_commit_failures_total",
                &self.commit_failures,
            ),
            (
                "clearway_engine_committed_workflows_total",
                &self.committed_workflows,
            ),
            (
                "clearway_engine_commit_microseconds_total",
                &self.commit_micros,
            ),
            ("clearway_engine_rejects_total", &self.rejects),
            ("clearway_engine_rebuilds_total", &self.rebuilds),
            (
                "clearway_redis_publish_failures_total",
                &self.redis_publish_failures,
            ),
        ];
        for (name, v) in counters {
            let _ = writeln!(
                out,
                "# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# TYPE clearway_ws_clients gauge\nclearway_ws_clients {}",
            self.ws_clients.load(Ordering::Relaxed)
        );
        out
    }
}

/// The methods counted by name; anything else (a client may send any token
/// as a method) is counted as `OTHER`, so callers cannot grow the series.
const COUNTED: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
];

/// Middleware: counts every request by its route template.
pub async fn count(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = if COUNTED.contains(req.method()) {
        req.method().clone()
    } else {
        Method::from_bytes(b"OTHER").unwrap_or_default()
    };
    let res = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.request(&method, route, res.status().as_u16());
    res
}
