//! A [`Store`] decorator that records the latency and errors of every
//! operation, so neither implementation has to.

use super::{
    AccountStatus, Begun, GrantKind, GrantLookup, LockedUntil, NoPeselPage, NoPeselQuery,
    NodeSession, PurgeProgress, RateBalance, RatePolicy, RateTake, Reclaimed, RegistryCounts,
    RegistryRecord, SessionRecord, SessionSpec, Settle, Settled, Store, StoreError,
    StoredNoPeselRequest,
};
use crate::clock::Millis;
use crate::domain::lockout::LockoutPolicy;
use crate::keys::PeselKey;
use crate::metrics::Metrics;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Instant;

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
        policy: &LockoutPolicy,
    ) -> Result<Begun, StoreError> {
        self.observe(
            "begin_attempt",
            self.inner.begin_attempt(key, ticket, policy),
        )
        .await
    }

    async fn locked_until(&self, key: &PeselKey) -> Result<Option<LockedUntil>, StoreError> {
        self.observe("locked_until", self.inner.locked_until(key))
            .await
    }

    async fn settle_attempt(
        &self,
        key: &PeselKey,
        ticket: &str,
        policy: &LockoutPolicy,
        settle: Settle,
    ) -> Result<Settled, StoreError> {
        self.observe(
            "settle_attempt",
            self.inner.settle_attempt(key, ticket, policy, settle),
        )
        .await
    }

    async fn touch_session(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
        idle: Millis,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.observe(
            "touch_session",
            self.inner.touch_session(key, token_hash, idle),
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

    async fn upsert_registry(&self, rows: &[RegistryRecord]) -> Result<RegistryCounts, StoreError> {
        self.observe("upsert_registry", self.inner.upsert_registry(rows))
            .await
    }

    async fn add_no_pesel_request(
        &self,
        request: &StoredNoPeselRequest,
        expire_at: Option<Millis>,
    ) -> Result<bool, StoreError> {
        self.observe(
            "add_no_pesel_request",
            self.inner.add_no_pesel_request(request, expire_at),
        )
        .await
    }

    async fn list_no_pesel_requests(
        &self,
        query: &NoPeselQuery,
    ) -> Result<NoPeselPage, StoreError> {
        self.observe(
            "list_no_pesel_requests",
            self.inner.list_no_pesel_requests(query),
        )
        .await
    }

    async fn mark_no_pesel_handled(&self, reference: &str) -> Result<bool, StoreError> {
        self.observe(
            "mark_no_pesel_handled",
            self.inner.mark_no_pesel_handled(reference),
        )
        .await
    }

    async fn take_rate_tokens(
        &self,
        takes: &[RateTake],
        policy: &RatePolicy,
    ) -> Result<Vec<RateBalance>, StoreError> {
        self.observe(
            "take_rate_tokens",
            self.inner.take_rate_tokens(takes, policy),
        )
        .await
    }

    async fn migrate(&self) -> Result<u64, StoreError> {
        self.observe("migrate", self.inner.migrate()).await
    }

    async fn purge(&self, progress: &PurgeProgress<'_>) -> Result<u64, StoreError> {
        self.observe("purge", self.inner.purge(progress)).await
    }

    async fn session_facts(
        &self,
        key: &PeselKey,
        session_hash: &[u8; 32],
    ) -> Result<Option<String>, StoreError> {
        self.observe("session_facts", self.inner.session_facts(key, session_hash))
            .await
    }

    async fn touch_session_with_facts(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
        idle: Millis,
    ) -> Result<Option<(SessionRecord, Option<String>)>, StoreError> {
        self.observe(
            "touch_session",
            self.inner.touch_session_with_facts(key, token_hash, idle),
        )
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

    async fn put_saml_request(
        &self,
        id_hash: &[u8; 32],
        state: &str,
        ttl: Millis,
    ) -> Result<(), StoreError> {
        self.observe(
            "put_saml_request",
            self.inner.put_saml_request(id_hash, state, ttl),
        )
        .await
    }

    async fn take_saml_request(&self, id_hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        self.observe("take_saml_request", self.inner.take_saml_request(id_hash))
            .await
    }

    async fn claim_saml_assertion(
        &self,
        id_hash: &[u8; 32],
        ttl: Millis,
    ) -> Result<bool, StoreError> {
        self.observe(
            "claim_saml_assertion",
            self.inner.claim_saml_assertion(id_hash, ttl),
        )
        .await
    }

    async fn open_node_session(
        &self,
        key: &PeselKey,
        session: &SessionSpec,
    ) -> Result<NodeSession, StoreError> {
        self.observe(
            "open_node_session",
            self.inner.open_node_session(key, session),
        )
        .await
    }

    async fn reclaim_account(
        &self,
        key: &PeselKey,
        generation: u64,
        password_phc: &str,
        keep_session: &[u8; 32],
    ) -> Result<Reclaimed, StoreError> {
        self.observe(
            "reclaim_account",
            self.inner
                .reclaim_account(key, generation, password_phc, keep_session),
        )
        .await
    }
}
