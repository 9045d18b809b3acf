//! The process's Prometheus metrics: one registry, filled where the work
//! happens (HTTP routes, calls, containers, the compile cache, dict
//! operations, the dict log's fsync rounds, volume commits) and encoded
//! by [`encode`] in the OpenMetrics text format, which `vessel serve`
//! answers at `GET /metrics` and an embedder can serve itself.
//!
//! The registry is process-wide, as the figures are: several stores or
//! apps in one process add to the same families, told apart by labels.
//! Label values are bounded by what the operator loads (apps, functions,
//! route templates), never by what a request names (a dict or key).

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub app: String,
    pub function: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    pub app: String,
    pub function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpOutcomeLabels {
    pub op: &'static str,
    pub outcome: &'static str,
}

/// A dict operation, for [`Metrics::dict_op`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DictOp {
    Get,
    GetMany,
    Put,
    Pop,
    Len,
    Update,
    RemoveMany,
    Scan,
    Clear,
    Increment,
    Lock,
    Renew,
    Release,
}

impl DictOp {
    const ALL: [DictOp; 13] = [
        DictOp::Get,
        DictOp::GetMany,
        DictOp::Put,
        DictOp::Pop,
        DictOp::Len,
        DictOp::Update,
        DictOp::RemoveMany,
        DictOp::Scan,
        DictOp::Clear,
        DictOp::Increment,
        DictOp::Lock,
        DictOp::Renew,
        DictOp::Release,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DictOp::Get => "get",
            DictOp::GetMany => "get_many",
            DictOp::Put => "put",
            DictOp::Pop => "pop",
            DictOp::Len => "len",
            DictOp::Update => "update",
            DictOp::RemoveMany => "remove_many",
            DictOp::Scan => "scan",
            DictOp::Clear => "clear",
            DictOp::Increment => "increment",
            DictOp::Lock => "lock",
            DictOp::Renew => "renew",
            DictOp::Release => "release",
        }
    }
}

fn latency() -> Histogram {
    // 100 µs to ~105 s.
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

/// Every family, registered once.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub calls: Family<CallLabels, Counter>,
    pub call_duration: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    pub containers_started: Counter,
    pub containers_retired: Counter,
    pub containers_warm: Gauge,
    pub containers_busy: Gauge,
    pub compile_cache: Family<ResultLabels, Counter>,
    pub dict_ops: Family<OpOutcomeLabels, Counter>,
    pub dict_duration: Family<OpLabels, Histogram, fn() -> Histogram>,
    pub fsync_rounds: Counter,
    pub fsync_round_writes: Histogram,
    pub volume_commits: Counter,
    pub volume_commit_duration: Histogram,
    pub volume_commit_bytes: Counter,
    pub blob_cache_bytes: Gauge,
    /// Each dict operation's `ok` counter and latency histogram, looked up
    /// once: dict reads are a hot path, and a family lookup per read would
    /// hash and lock for nothing.
    dict_ok: Vec<(Counter, Histogram)>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vessel");
        let m = Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency as fn() -> Histogram),
            calls: Family::default(),
            call_duration: Family::new_with_constructor(latency as fn() -> Histogram),
            containers_started: Counter::default(),
            containers_retired: Counter::default(),
            containers_warm: Gauge::default(),
            containers_busy: Gauge::default(),
            compile_cache: Family::default(),
            dict_ops: Family::default(),
            dict_duration: Family::new_with_constructor(latency as fn() -> Histogram),
            fsync_rounds: Counter::default(),
            // 1 to 4096 writes per round.
            fsync_round_writes: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            volume_commits: Counter::default(),
            volume_commit_duration: latency(),
            volume_commit_bytes: Counter::default(),
            blob_cache_bytes: Gauge::default(),
            registry: Registry::default(),
            dict_ok: Vec::new(),
        };
        let r = &mut registry;
        r.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template, to the answer's headers",
            m.http_duration.clone(),
        );
        r.register(
            "calls",
            "Function calls by app, function and outcome (ok or the error kind)",
            m.calls.clone(),
        );
        r.register(
            "call_duration_seconds",
            "Function call latency by app and function, container start included",
            m.call_duration.clone(),
        );
        r.register(
            "containers_started",
            "Containers started",
            m.containers_started.clone(),
        );
        r.register(
            "containers_retired",
            "Containers retired (idle, failed, or at shutdown)",
            m.containers_retired.clone(),
        );
        r.register(
            "blob_cache_bytes",
            "Bytes in this host's local cache of the shared backend's blobs (bounded by --blob-cache-size)",
            m.blob_cache_bytes.clone(),
        );
        r.register(
            "containers_warm",
            "Containers idle in their pools, ready for a call",
            m.containers_warm.clone(),
        );
        r.register(
            "containers_busy",
            "Containers running a call",
            m.containers_busy.clone(),
        );
        r.register(
            "compile_cache",
            "Component loads by compile-cache result (hit or miss)",
            m.compile_cache.clone(),
        );
        r.register(
            "dict_operations",
            "Dict operations by operation and outcome (ok or the error kind)",
            m.dict_ops.clone(),
        );
        r.register(
            "dict_operation_duration_seconds",
            "Dict operation latency by operation",
            m.dict_duration.clone(),
        );
        r.register(
            "fsync_rounds",
            "Durability rounds of the embedded dict log (one fdatasync each)",
            m.fsync_rounds.clone(),
        );
        r.register(
            "fsync_round_writes",
            "Writes made durable per round of the embedded dict log",
            m.fsync_round_writes.clone(),
        );
        r.register(
            "volume_commits",
            "Volume commits that published a version",
            m.volume_commits.clone(),
        );
        r.register(
            "volume_commit_duration_seconds",
            "Volume commit latency",
            m.volume_commit_duration.clone(),
        );
        r.register(
            "volume_commit_bytes",
            "Bytes of the files volume commits created or replaced",
            m.volume_commit_bytes.clone(),
        );
        let dict_ok = DictOp::ALL
            .iter()
            .map(|op| {
                let op = op.name();
                (
                    m.dict_ops
                        .get_or_create_owned(&OpOutcomeLabels { op, outcome: "ok" }),
                    m.dict_duration.get_or_create_owned(&OpLabels { op }),
                )
            })
            .collect();
        Metrics {
            registry,
            dict_ok,
            ..m
        }
    }

    /// Counts one dict operation (`outcome`: `ok` or the error kind) and
    /// its latency.
    pub fn dict_op(&self, op: DictOp, outcome: &'static str, took: Duration) {
        let secs = took.as_secs_f64();
        match self.dict_ok.get(op as usize) {
            Some((ok, hist)) if outcome == "ok" => {
                ok.inc();
                hist.observe(secs);
            }
            _ => {
                let op = op.name();
                self.dict_ops
                    .get_or_create(&OpOutcomeLabels { op, outcome })
                    .inc();
                self.dict_duration
                    .get_or_create(&OpLabels { op })
                    .observe(secs);
            }
        }
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Every metric, in the OpenMetrics text format ([`CONTENT_TYPE`]).
pub fn encode() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &global().registry);
    out
}
