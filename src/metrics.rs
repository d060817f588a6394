//! Prometheus metrics of one application instance (names are part of the ops
//! contract: dashboards and alerts in `k8s/monitoring/` use them). Each
//! `Application` owns its own registry, so tests can run several in one process.
//! Label values are bounded: routes are patterns, never a PESEL, IP or id.

use crate::problem_code::ProblemCode;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The `op` label values of the store metrics, one per `Store` method.
pub const STORE_OPERATIONS: &[&str] = &[
    "ping",
    "begin_attempt",
    "locked_until",
    "settle_attempt",
    "touch_session",
    "delete_session",
    "account_status",
    "unlock",
    "reset_account",
    "upsert_registry",
    "add_no_pesel_request",
    "list_no_pesel_requests",
    "mark_no_pesel_handled",
    "take_rate_tokens",
    "migrate",
    "purge",
    "session_facts",
    "put_authorization_request",
    "authorization_request",
    "put_grant",
    "use_grant",
    "put_saml_request",
    "take_saml_request",
    "claim_saml_assertion",
    "open_node_session",
    "reclaim_account",
];

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub auth_outcomes: IntCounterVec,
    pub locks_started: IntCounterVec,
    pub hash_slots: IntGauge,
    pub hash_slots_in_use: IntGauge,
    pub hash_queue_capacity: IntGauge,
    pub hash_queue_depth: IntGauge,
    pub hash_duration: Histogram,
    pub hash_rejected: IntCounter,
    pub store_duration: HistogramVec,
    pub store_errors: IntCounterVec,
    pub store_up: IntGauge,
    pub rate_limited: IntCounterVec,
    pub oidc_codes_issued: IntCounter,
    pub oidc_codes_redeemed: IntCounter,
    pub oidc_refused: IntCounterVec,
    pub saml_refused: IntCounterVec,
    pub saml_logins: IntCounter,
}

/// `reason` values of `census_oidc_refused_total` (bounded: see `crate::oidc`).
pub const OIDC_REFUSAL_REASONS: &[&str] = &[
    // authorization endpoint
    "unknown_client",
    "redirect_uri",
    "invalid_request",
    "login_required",
    "access_denied",
    // token endpoint
    "invalid_client",
    "unsupported_grant_type",
    "code_unknown",
    "code_client",
    "redirect_uri_mismatch",
    "pkce",
    "session_ended",
    "account_reset",
    "window_closed",
    "store_unavailable",
    // userinfo and end session
    "invalid_token",
    "logout_request",
];

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const STORE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0,
];

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique and valid");
    c
}

impl Metrics {
    pub fn new(git_commit: &str) -> Self {
        let r = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge =
            |name: &str, help: &str| register(&r, IntGauge::new(name, help).expect("valid metric"));
        let build = register(
            &r,
            IntGaugeVec::new(
                Opts::new("census_build_info", "Build information; always 1."),
                &["version", "git_commit"],
            )
            .expect("valid metric"),
        );
        build
            .with_label_values(&[env!("CENSUS_VERSION"), git_commit])
            .set(1);
        #[cfg(target_os = "linux")]
        r.register(Box::new(process::Process::new()))
            .expect("process collector registers once per registry");
        let metrics = Self {
            http_requests: counter_vec(
                "census_http_requests_total",
                "HTTP requests by route pattern, method and status.",
                &["route", "method", "status"],
            ),
            http_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "census_http_request_duration_seconds",
                        "HTTP request latency by route pattern and method.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["route", "method"],
                )
                .expect("valid metric"),
            ),
            auth_outcomes: counter_vec(
                "census_auth_outcomes_total",
                "Password definition and login outcomes.",
                &["flow", "result"],
            ),
            locks_started: counter_vec(
                "census_locks_started_total",
                "Account locks started, by escalation level.",
                &["level"],
            ),
            hash_slots: gauge("census_hash_slots", "Argon2 hashing slots (capacity)."),
            hash_slots_in_use: gauge("census_hash_slots_in_use", "Argon2 hashing slots busy."),
            hash_queue_capacity: gauge(
                "census_hash_queue_capacity",
                "Hash jobs that may wait for a slot.",
            ),
            hash_queue_depth: gauge("census_hash_queue_depth", "Hash jobs waiting for a slot."),
            hash_duration: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "census_hash_duration_seconds",
                        "Time one Argon2 hash or verification takes on a slot.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
            hash_rejected: register(
                &r,
                IntCounter::new(
                    "census_hash_rejected_total",
                    "Requests shed with 503 overloaded because the hashing queue was full.",
                )
                .expect("valid metric"),
            ),
            store_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "census_store_operation_duration_seconds",
                        "Store operation latency by operation.",
                    )
                    .buckets(STORE_BUCKETS.to_vec()),
                    &["op"],
                )
                .expect("valid metric"),
            ),
            store_errors: counter_vec(
                "census_store_errors_total",
                "Store operations that failed, by operation.",
                &["op"],
            ),
            store_up: gauge("census_store_up", "1 when the last store ping succeeded."),
            rate_limited: counter_vec(
                "census_rate_limited_total",
                "Requests refused by the per-IP rate limit, by route.",
                &["route"],
            ),
            oidc_codes_issued: register(
                &r,
                IntCounter::new(
                    "census_oidc_codes_issued_total",
                    "Authorization codes issued to relying parties (hand-offs begun).",
                )
                .expect("valid metric"),
            ),
            oidc_codes_redeemed: register(
                &r,
                IntCounter::new(
                    "census_oidc_codes_redeemed_total",
                    "Authorization codes redeemed for tokens (hand-offs completed).",
                )
                .expect("valid metric"),
            ),
            oidc_refused: counter_vec(
                "census_oidc_refused_total",
                "OpenID Connect requests refused, by reason.",
                &["reason"],
            ),
            saml_refused: counter_vec(
                "census_saml_refused_total",
                "login.gov.pl responses (and login starts) refused, by reason.",
                &["reason"],
            ),
            saml_logins: register(
                &r,
                IntCounter::new(
                    "census_saml_logins_total",
                    "login.gov.pl responses accepted: node logins that opened a session.",
                )
                .expect("valid metric"),
            ),
            registry: r,
        };
        metrics.touch_known_labels();
        metrics
    }

    /// Creates every known label combination at zero, so that the first event
    /// after a deploy shows up in `rate()` and panels show 0 rather than no data.
    fn touch_known_labels(&self) {
        use ProblemCode::*;
        const OUTCOMES: &[ProblemCode] = &[
            InvalidCredentials,
            IdentityNotVerified,
            AccountLocked,
            SurveyWindowClosed,
            CensusNotOpen,
            CensusClosed,
            PasswordAlreadyDefined,
            PeselReserved,
            ValidationFailed,
            Overloaded,
            RateLimited,
            StoreUnavailable,
        ];
        for flow in ["define", "login"] {
            self.auth_outcomes.with_label_values(&[flow, "ok"]);
            for code in OUTCOMES {
                let only_define = matches!(
                    code,
                    IdentityNotVerified | PasswordAlreadyDefined | PeselReserved
                );
                if (flow == "login" && only_define)
                    || (flow == "define" && *code == SurveyWindowClosed)
                {
                    continue;
                }
                self.auth_outcomes
                    .with_label_values(&[flow, code.outcome_label()]);
            }
        }
        for level in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10+"] {
            self.locks_started.with_label_values(&[level]);
        }
        for op in STORE_OPERATIONS {
            self.store_errors.with_label_values(&[op]);
        }
        for route in [
            "/api/v1/login",
            "/api/v1/password",
            "/api/v1/no-pesel-requests",
            "/oidc/authorize",
        ] {
            self.rate_limited.with_label_values(&[route]);
        }
        for reason in OIDC_REFUSAL_REASONS {
            self.oidc_refused.with_label_values(&[reason]);
        }
        for r in crate::saml::Refusal::ALL {
            self.saml_refused.with_label_values(&[r.label()]);
        }
    }

    /// Counts a refused OpenID Connect request; `reason` is one of
    /// [`OIDC_REFUSAL_REASONS`] (anything else is counted as `invalid_request`).
    pub fn oidc_refused(&self, reason: &str) {
        let reason = if OIDC_REFUSAL_REASONS.contains(&reason) {
            reason
        } else {
            "invalid_request"
        };
        self.oidc_refused.with_label_values(&[reason]).inc();
    }

    /// The lock level as a bounded label.
    pub fn lock_started(&self, level: u32) {
        let label = if level >= 10 {
            "10+".to_owned()
        } else {
            level.to_string()
        };
        self.locks_started.with_label_values(&[&label]).inc();
    }

    pub fn auth(&self, flow: &str, result: &str) {
        self.auth_outcomes.with_label_values(&[flow, result]).inc();
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Process metrics. The `prometheus` crate's collector counts CPU in whole seconds
/// (integer division of clock ticks), which makes `rate(process_cpu_seconds_total)`
/// read 0 on a lightly loaded replica; this one keeps its memory, fd and thread
/// gauges and replaces the CPU counter with `getrusage` at microsecond resolution.
#[cfg(target_os = "linux")]
mod process {
    use prometheus::core::{Collector, Desc};
    use prometheus::process_collector::ProcessCollector;
    use prometheus::proto::MetricFamily;
    use prometheus::{Counter, Opts};

    const CPU: &str = "process_cpu_seconds_total";

    pub struct Process {
        inner: ProcessCollector,
        cpu: Counter,
    }

    impl Process {
        pub fn new() -> Self {
            let cpu = Counter::with_opts(Opts::new(
                CPU,
                "Total user and system CPU time spent in seconds.",
            ))
            .expect("valid metric");
            Self {
                inner: ProcessCollector::for_self(),
                cpu,
            }
        }
    }

    /// User + system CPU seconds of the whole process (all threads).
    fn cpu_seconds() -> Option<f64> {
        // SAFETY: getrusage only writes into the zeroed struct we pass.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return None;
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Some(secs(usage.ru_utime) + secs(usage.ru_stime))
    }

    impl Collector for Process {
        fn desc(&self) -> Vec<&Desc> {
            let mut d: Vec<&Desc> = self
                .inner
                .desc()
                .into_iter()
                .filter(|d| d.fq_name != CPU)
                .collect();
            d.extend(self.cpu.desc());
            d
        }

        fn collect(&self) -> Vec<MetricFamily> {
            let mut mfs: Vec<MetricFamily> = self
                .inner
                .collect()
                .into_iter()
                .filter(|mf| mf.name() != CPU)
                .collect();
            if let Some(now) = cpu_seconds() {
                // Concurrent scrapes may both add; never let the counter go backwards.
                let delta = now - self.cpu.get();
                if delta > 0.0 {
                    self.cpu.inc_by(delta);
                }
            }
            mfs.extend(self.cpu.collect());
            mfs
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::Metrics;

    fn cpu_seconds(m: &Metrics) -> f64 {
        let text = m.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("process_cpu_seconds_total "))
            .expect("process_cpu_seconds_total is exported");
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("a number")
    }

    #[test]
    fn cpu_counter_moves_with_sub_second_work() {
        let m = Metrics::new("test");
        let before = cpu_seconds(&m);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = cpu_seconds(&m);
        // Whole-second truncation would show 0 (or a jump of 1) here.
        assert!(
            after - before >= 0.03 && after - before < 0.9,
            "cpu counter moved by {} s for ~60 ms of work",
            after - before
        );
    }
}
