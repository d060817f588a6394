//! The helpline's actions (admin API and command line): account status,
//! unlock, reset; and the no-PESEL requests they work through. Each action
//! is an audit event in the log, naming the operator who took it.

use super::{AuthError, AuthService, session};
use crate::clock::{Millis, rfc3339};
use crate::domain::Violation;
use crate::domain::no_pesel::NoPeselRequest;
use crate::domain::window::window_end;
use crate::keys::PeselKey;
use crate::store::{NO_PESEL_LIST_LIMIT, NoPeselPage, NoPeselQuery, StoredNoPeselRequest};
use serde::Serialize;

/// What the helpline sees of an account (`GET /admin/v1/accounts/{pesel}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub registered: bool,
    pub password_defined: bool,
    pub reserved: bool,
    #[schema(format = DateTime)]
    pub first_login_at: Option<String>,
    #[schema(format = DateTime)]
    pub window_ends_at: Option<String>,
    pub lockout: LockoutView,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockoutView {
    pub failures: u32,
    #[schema(format = DateTime)]
    pub locked_until: Option<String>,
    pub level: u32,
}

/// Which no-PESEL requests to list (`?state=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestState {
    #[default]
    Open,
    All,
}

impl AuthService {
    fn admin_key(&self, pesel: &str) -> Result<PeselKey, AuthError> {
        let pesel = self
            .parse_pesel(pesel)
            .map_err(|e| AuthError::Validation(vec![Violation::new("pesel", e.code())]))?;
        Ok(self.keys().pesel_key(&pesel))
    }

    /// The account with its lockout state brought up to the store's now.
    /// Looking is audited too (info): who saw whose account.
    pub async fn account_view(&self, pesel: &str, actor: &str) -> Result<AccountView, AuthError> {
        let key = self.admin_key(pesel)?;
        tracing::info!(event = "admin_account_view", audit = true, actor, cid = %key.correlation_id(), "account looked up by the helpline");
        let mut status = self.store().account_status(&key).await?;
        let s = self.settings();
        status.lock.advance(&s.lockout, status.now);
        let (a, l) = (&status.account, &status.lock);
        Ok(AccountView {
            registered: a.registered(),
            password_defined: a.password_phc.is_some(),
            reserved: a.reserved,
            first_login_at: a.first_login_at.map(rfc3339),
            window_ends_at: a
                .first_login_at
                .map(|fl| rfc3339(window_end(fl, s.window, s.period.closes_at))),
            lockout: LockoutView {
                failures: l.failures,
                locked_until: l.is_locked(status.now).then(|| rfc3339(l.locked_until)),
                level: l.level,
            },
        })
    }

    pub async fn unlock(&self, pesel: &str, actor: &str) -> Result<(), AuthError> {
        let key = self.admin_key(pesel)?;
        self.store().unlock(&key).await?;
        self.locks.forget(&key);
        tracing::warn!(event = "admin_unlock", audit = true, actor, cid = %key.correlation_id(), "lock lifted by the helpline");
        Ok(())
    }

    /// Removes the password and every session and moves the account's
    /// generation on, so no attempt in flight can settle after it.
    pub async fn reset(&self, pesel: &str, actor: &str) -> Result<bool, AuthError> {
        let key = self.admin_key(pesel)?;
        let had_password = self.store().reset_account(&key).await?;
        self.locks.forget(&key);
        tracing::warn!(event = "admin_reset", audit = true, actor, had_password, cid = %key.correlation_id(), "account reset by the helpline");
        Ok(had_password)
    }

    /// Stores a no-PESEL request and returns its reference.
    pub async fn request_without_pesel(
        &self,
        full_name: &str,
        email: Option<&str>,
        phone: Option<&str>,
        message: Option<&str>,
    ) -> Result<String, AuthError> {
        let request = NoPeselRequest::parse(full_name, email, phone, message)
            .map_err(AuthError::Validation)?;
        let mut stored = StoredNoPeselRequest {
            reference: String::new(),
            received_at: rfc3339(self.now()),
            full_name: request.full_name,
            email: request.email,
            phone: request.phone,
            message: request.message,
            handled: false,
        };
        // References are 40 random bits: a collision is rare, and then
        // another is drawn rather than a request overwritten.
        for _ in 0..4 {
            stored.reference = format!("NSP-{}", session::random_hex(5).to_uppercase());
            let retain_until = self.settings().retain_until;
            if self
                .store()
                .add_no_pesel_request(&stored, retain_until)
                .await?
            {
                tracing::info!(event = "no_pesel_request", reference = %stored.reference, "no-PESEL request stored");
                return Ok(stored.reference);
            }
        }
        Err(AuthError::StoreUnavailable)
    }

    /// A page of no-PESEL requests, newest first; `limit` is capped at
    /// [`NO_PESEL_LIST_LIMIT`].
    pub async fn no_pesel_requests(
        &self,
        limit: Option<usize>,
        cursor: Option<&str>,
        state: RequestState,
        actor: &str,
    ) -> Result<NoPeselPage, AuthError> {
        let before = match cursor {
            None | Some("") => None,
            Some(c) => Some(c.parse::<u64>().map_err(|_| {
                AuthError::Validation(vec![Violation::new("cursor", "cursor_invalid")])
            })?),
        };
        let query = NoPeselQuery {
            limit: limit.unwrap_or(100).clamp(1, NO_PESEL_LIST_LIMIT),
            before,
            include_handled: state == RequestState::All,
        };
        tracing::info!(
            event = "admin_no_pesel_list",
            audit = true,
            actor,
            limit = query.limit,
            "no-PESEL requests listed by the helpline"
        );
        Ok(self.store().list_no_pesel_requests(&query).await?)
    }

    /// Marks a request handled; `NotFound` when there is no such request.
    pub async fn mark_no_pesel_handled(
        &self,
        reference: &str,
        actor: &str,
    ) -> Result<(), AuthError> {
        if !self.store().mark_no_pesel_handled(reference).await? {
            return Err(AuthError::NotFound);
        }
        tracing::warn!(
            event = "admin_no_pesel_handled",
            audit = true,
            actor,
            reference,
            "no-PESEL request handled"
        );
        Ok(())
    }
}

/// Milliseconds until a stored request expires, for documentation and tests.
pub fn retain_until(closes_at: Option<Millis>, retention: Millis) -> Option<Millis> {
    closes_at.map(|c| c.saturating_add(retention))
}
