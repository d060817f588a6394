//! The flows of RULES.md over the domain rules and the store: password
//! definition, login, sessions, the helpline's admin actions and no-PESEL
//! requests. HTTP knows nothing of these rules; it calls [`AuthService`] and
//! maps [`AuthError`] to problem+json.

pub mod admin;
pub mod bench;
pub mod flows;
pub mod handoff;
pub mod hasher;
pub mod lock_cache;
pub mod session;

use crate::clock::{Clock, Millis};
use crate::domain::lockout::LockoutPolicy;
use crate::domain::window::{CensusPeriod, PeriodError};
use crate::domain::{Pesel, PeselError, Violation};
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::problem_code::ProblemCode;
use crate::store::{SessionRecord, Store, StoreError};
use hasher::HashPool;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("validation failed")]
    Validation(Vec<Violation>),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("identity not verified")]
    IdentityNotVerified,
    #[error("not authenticated")]
    NotAuthenticated,
    #[error("survey window closed")]
    WindowClosed,
    #[error("census not open")]
    CensusNotOpen,
    #[error("census closed")]
    CensusClosed,
    #[error("PESEL reserved")]
    PeselReserved,
    #[error("password already defined")]
    PasswordAlreadyDefined,
    #[error("account locked")]
    Locked { until: Millis, retry_after: u64 },
    #[error("overloaded")]
    Overloaded { retry_after: u64 },
    #[error("store unavailable")]
    StoreUnavailable,
    #[error("not found")]
    NotFound,
}

impl AuthError {
    /// The problem code of API.md this error is answered with.
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::Validation(_) => ProblemCode::ValidationFailed,
            Self::InvalidCredentials => ProblemCode::InvalidCredentials,
            Self::IdentityNotVerified => ProblemCode::IdentityNotVerified,
            Self::NotAuthenticated => ProblemCode::NotAuthenticated,
            Self::WindowClosed => ProblemCode::SurveyWindowClosed,
            Self::CensusNotOpen => ProblemCode::CensusNotOpen,
            Self::CensusClosed => ProblemCode::CensusClosed,
            Self::PeselReserved => ProblemCode::PeselReserved,
            Self::PasswordAlreadyDefined => ProblemCode::PasswordAlreadyDefined,
            Self::Locked { .. } => ProblemCode::AccountLocked,
            Self::Overloaded { .. } => ProblemCode::Overloaded,
            Self::StoreUnavailable => ProblemCode::StoreUnavailable,
            Self::NotFound => ProblemCode::NotFound,
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(_: StoreError) -> Self {
        // Details were logged by the instrumented store; the caller fails closed.
        AuthError::StoreUnavailable
    }
}

/// Everything a flow needs, behind one cheap-to-clone handle.
#[derive(Clone)]
pub struct AuthService {
    inner: Arc<AuthParts>,
    locks: Arc<lock_cache::LockCache>,
}

pub struct AuthSettings {
    pub lockout: LockoutPolicy,
    pub period: CensusPeriod,
    pub window: Millis,
    pub idle: Millis,
    pub min_password_length: usize,
    pub refuse_reserved: bool,
    /// `census.closes_at` + `census.retention`: when no-PESEL requests expire.
    pub retain_until: Option<Millis>,
    /// `password.shed_delay`: how long a shed attempt waits for its 503.
    pub shed_delay: std::time::Duration,
}

/// What the flows are made of; handed over once, then private to them.
pub struct AuthParts {
    pub store: Arc<dyn Store>,
    pub keys: Arc<Keys>,
    pub hasher: HashPool,
    pub metrics: Arc<Metrics>,
    pub settings: AuthSettings,
    pub clock: Arc<dyn Clock>,
}

/// A created or refreshed session: the cookie value and what the API returns.
#[derive(Debug)]
pub struct SessionGrant {
    pub cookie_value: String,
    pub record: SessionRecord,
}

impl AuthService {
    pub fn new(parts: AuthParts) -> Self {
        Self {
            inner: Arc::new(parts),
            locks: Arc::default(),
        }
    }

    /// The service's clock: the census period and today's date. Lockout and
    /// session times are the store's.
    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// Parses a PESEL against today's date in Poland.
    pub fn parse_pesel(&self, input: &str) -> Result<Pesel, PeselError> {
        Pesel::parse(input, self.inner.clock.poland_today())
    }

    // The parts stay inside the flows (this module and its children): HTTP
    // calls flows, never the store, keys or pool around them.
    fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    fn hasher(&self) -> &HashPool {
        &self.inner.hasher
    }

    fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Readiness: whether the store answers.
    pub async fn store_ready(&self) -> bool {
        self.store().ping().await.is_ok()
    }

    /// Brings gauges that are read rather than counted up to date (before a scrape).
    pub fn refresh_gauges(&self) {
        self.metrics().hash_queue_depth.set(self.hasher().queued());
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    fn check_period(&self, now: Millis) -> Result<(), AuthError> {
        self.inner.settings.period.check(now).map_err(|e| match e {
            PeriodError::NotOpen => AuthError::CensusNotOpen,
            PeriodError::Closed => AuthError::CensusClosed,
        })
    }
}

pub use crate::clock::seconds_until;
