//! The helpline's actions (admin API and command line): account status,
//! unlock, reset; and the no-PESEL requests they work through. Each action
//! is an audit event in the log.

use super::*;
use crate::domain::no_pesel::NoPeselRequest;
use crate::store::{AccountStatus, StoredNoPeselRequest};
use time::format_description::well_known::Rfc3339;

impl AuthService {
    fn admin_key(&self, pesel: &str) -> Result<crate::keys::PeselKey, AuthError> {
        let pesel = parse_pesel(pesel)
            .map_err(|e| AuthError::Validation(vec![Violation::new("pesel", e.code())]))?;
        Ok(self.keys().pesel_key(&pesel))
    }

    /// Account status with the lockout state brought up to now.
    pub async fn account_status(&self, pesel: &str) -> Result<AccountStatus, AuthError> {
        let key = self.admin_key(pesel)?;
        let mut status = self.store().account_status(&key).await?;
        status.lock.advance(&self.settings().lockout, now_millis());
        Ok(status)
    }

    pub async fn unlock(&self, pesel: &str, actor: &str) -> Result<(), AuthError> {
        let key = self.admin_key(pesel)?;
        self.store().unlock(&key).await?;
        tracing::warn!(event = "admin_unlock", audit = true, actor, cid = %key.correlation_id(), "lock lifted by the helpline");
        Ok(())
    }

    pub async fn reset(&self, pesel: &str, actor: &str) -> Result<bool, AuthError> {
        let key = self.admin_key(pesel)?;
        let had_password = self.store().reset_account(&key).await?;
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
        let reference = format!("NSP-{}", session::random_hex(5).to_uppercase());
        let stored = StoredNoPeselRequest {
            reference: reference.clone(),
            received_at: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            full_name: request.full_name,
            email: request.email,
            phone: request.phone,
            message: request.message,
        };
        self.store().add_no_pesel_request(&stored).await?;
        tracing::info!(event = "no_pesel_request", reference = %reference, "no-PESEL request stored");
        Ok(reference)
    }

    pub async fn no_pesel_requests(&self) -> Result<Vec<StoredNoPeselRequest>, AuthError> {
        Ok(self.store().list_no_pesel_requests().await?)
    }
}
