//! Prometheus metrics (`metrics` facade, `metrics-exporter-prometheus` text format): their
//! names and the recorder. A leaf: counters and gauges are recorded where things happen; what
//! is cheaper to read than to track (agent links, live sessions, the database pool) is read when
//! `/metrics` is scraped (`http/metrics.rs`).
//!
//! Served on `metrics.bind` (its own address) or on the main address behind `metrics.token`;
//! with neither, nowhere.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "claudenest_http_requests_total";
pub const HTTP_DURATION: &str = "claudenest_http_request_duration_seconds";
pub const WEBSOCKET_CONNECTIONS: &str = "claudenest_websocket_connections";
pub const SUBSCRIPTIONS: &str = "claudenest_websocket_subscriptions";
pub const FANNED_OUT: &str = "claudenest_messages_fanned_out_total";
pub const AGENT_LINKS: &str = "claudenest_agent_links";
pub const LIVE_SESSIONS: &str = "claudenest_sessions_live";
pub const OUTPUT_BYTES: &str = "claudenest_session_output_bytes_total";
pub const RATE_LIMITED: &str = "claudenest_rate_limited_total";
pub const POOL_CONNECTIONS: &str = "claudenest_db_pool_connections";
pub const POOL_IDLE: &str = "claudenest_db_pool_idle_connections";
pub const NOTIFICATIONS: &str = "claudenest_notification_deliveries_total";
pub const EMBEDDING_QUEUE: &str = "claudenest_embedding_queue_depth";

/// Request latency buckets, seconds: 1 ms … 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Holds a gauge one higher while it lives (a socket open, a link up).
pub struct Held(&'static str);

impl Held {
    pub fn new(gauge: &'static str) -> Self {
        metrics::gauge!(gauge).increment(1.0);
        Self(gauge)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

/// The process's recorder, installed on first use (every host in one process shares it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), LATENCY_BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder installed first (a test harness): ours still renders what it saw.
        let _ = metrics::set_global_recorder(recorder);
        // Series exist from the start (at 0), so a scrape shows them before anything happens.
        for counter in [FANNED_OUT, OUTPUT_BYTES, RATE_LIMITED] {
            metrics::counter!(counter).increment(0);
        }
        for gauge in [WEBSOCKET_CONNECTIONS, SUBSCRIPTIONS] {
            metrics::gauge!(gauge).increment(0.0);
        }
        handle
    })
}
