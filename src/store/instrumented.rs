//! A [`Store`] decorator that records the latency and errors of every
//! operation, so neither implementation has to.

use super::*;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Instant;

/// The `op` label values, one per [`Store`] method.
pub const OPERATIONS: &[&str] = &[
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
    "purge",
    "put_session_facts",
    "session_facts",
    "put_authorization_request",
    "authorization_request",
    "put_grant",
    "use_grant",
];

pub struct Instrumented {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn observe<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let result = fut.await;
        self.metrics
            .store_duration
            .with_label_values(&[op])
            .observe(start.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics.store_errors.with_label_values(&[op]).inc();
            tracing::warn!(op, error = %e, "store operation failed");
        }
        result
    }
}

#[async_trait]
impl Store for Instrumented {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let r = self.observe("ping", self.inner.ping()).await;
        self.metrics.store_up.set(i64::from(r.is_ok()));
        r
    }

    async fn begin_attempt(
        &self,
        key: &PeselKey,
        ticket: &str,
        now: Millis,
        policy: &LockoutPolicy,
    ) -> Result<Begin, StoreError> {
        self.observe(
            "begin_attempt",
            self.inner.begin_attempt(key, ticket, now, policy),
        )
        .await
    }

    async fn locked_until(
        &self,
        key: &PeselKey,
        now: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        self.observe("locked_until", self.inner.locked_until(key, now))
            .await
    }

    async fn settle_attempt(
        &self,
        key: &PeselKey,
        ticket: &str,
        now: Millis,
        policy: &LockoutPolicy,
        settle: Settle,
    ) -> Result<Settled, StoreError> {
        self.observe(
            "settle_attempt",
            self.inner.settle_attempt(key, ticket, now, policy, settle),
        )
        .await
    }

    async fn touch_session(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
        now: Millis,
        idle: Millis,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.observe(
            "touch_session",
            self.inner.touch_session(key, token_hash, now, idle),
        )
        .await
    }

    async fn delete_session(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        self.observe("delete_session", self.inner.delete_session(key, token_hash))
            .await
    }

    async fn account_status(&self, key: &PeselKey) -> Result<AccountStatus, StoreError> {
        self.observe("account_status", self.inner.account_status(key))
            .await
    }

    async fn unlock(&self, key: &PeselKey) -> Result<(), StoreError> {
        self.observe("unlock", self.inner.unlock(key)).await
    }

    async fn reset_account(&self, key: &PeselKey) -> Result<bool, StoreError> {
        self.observe("reset_account", self.inner.reset_account(key))
            .await
    }

    async fn upsert_registry(&self, rows: &[RegistryRecord]) -> Result<(), StoreError> {
        self.observe("upsert_registry", self.inner.upsert_registry(rows))
            .await
    }

    async fn add_no_pesel_request(&self, request: &StoredNoPeselRequest) -> Result<(), StoreError> {
        self.observe(
            "add_no_pesel_request",
            self.inner.add_no_pesel_request(request),
        )
        .await
    }

    async fn list_no_pesel_requests(&self) -> Result<Vec<StoredNoPeselRequest>, StoreError> {
        self.observe(
            "list_no_pesel_requests",
            self.inner.list_no_pesel_requests(),
        )
        .await
    }

    async fn purge(&self) -> Result<u64, StoreError> {
        self.observe("purge", self.inner.purge()).await
    }

    async fn put_session_facts(
        &self,
        key: &PeselKey,
        session_hash: &[u8; 32],
        sealed: &str,
        ttl: Millis,
    ) -> Result<(), StoreError> {
        self.observe(
            "put_session_facts",
            self.inner.put_session_facts(key, session_hash, sealed, ttl),
        )
        .await
    }

    async fn session_facts(
        &self,
        key: &PeselKey,
        session_hash: &[u8; 32],
    ) -> Result<Option<String>, StoreError> {
        self.observe("session_facts", self.inner.session_facts(key, session_hash))
            .await
    }

    async fn put_authorization_request(
        &self,
        id_hash: &[u8; 32],
        request: &str,
        ttl: Millis,
    ) -> Result<(), StoreError> {
        self.observe(
            "put_authorization_request",
            self.inner.put_authorization_request(id_hash, request, ttl),
        )
        .await
    }

    async fn authorization_request(
        &self,
        id_hash: &[u8; 32],
        take: bool,
    ) -> Result<Option<String>, StoreError> {
        self.observe(
            "authorization_request",
            self.inner.authorization_request(id_hash, take),
        )
        .await
    }

    async fn put_grant(
        &self,
        key: &PeselKey,
        kind: GrantKind,
        grant_hash: &[u8; 32],
        session_hash: &[u8; 32],
        sealed: &str,
        ttl: Millis,
    ) -> Result<(), StoreError> {
        self.observe(
            "put_grant",
            self.inner
                .put_grant(key, kind, grant_hash, session_hash, sealed, ttl),
        )
        .await
    }

    async fn use_grant(
        &self,
        key: &PeselKey,
        kind: GrantKind,
        grant_hash: &[u8; 32],
    ) -> Result<GrantLookup, StoreError> {
        self.observe("use_grant", self.inner.use_grant(key, kind, grant_hash))
            .await
    }
}
