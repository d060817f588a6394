//! Password definition ("ZDEFINIUJ HASŁO") and login ("ZALOGUJ"), step by step
//! in the order of RULES.md: validate, census period, reserve the attempt
//! (lockout), check the credentials, settle. Each flow runs to completion on
//! its own task, so a client that hangs up cannot leave an attempt unsettled.

use super::{AuthError, AuthService, SessionGrant, seconds_until, session};
use crate::auth::hasher;
use crate::clock::Millis;
use crate::domain::{LoginPassword, MaidenName, NewPassword};
use crate::domain::{Pesel, Violation};
use crate::keys::PeselKey;
use crate::store::{Begin, Begun, LockedUntil, PasswordWrite, Settle, Settled};
use subtle::ConstantTimeEq;
use tracing::Instrument;

/// Raw input of `POST /api/v1/password`.
pub struct DefineInput {
    pub pesel: String,
    pub mother_maiden_name: String,
    pub password: String,
    pub password_repeat: String,
}

/// Raw input of `POST /api/v1/login`.
pub struct LoginInput {
    pub pesel: String,
    pub password: String,
}

#[derive(Clone, Copy)]
enum Flow {
    Define,
    Login,
}

impl Flow {
    fn label(self) -> &'static str {
        match self {
            Flow::Define => "define",
            Flow::Login => "login",
        }
    }
}

impl AuthService {
    pub async fn define_password(&self, input: DefineInput) -> Result<SessionGrant, AuthError> {
        let this = self.clone();
        self.finish_on_own_task(Flow::Define, async move { this.define_inner(input).await })
            .await
    }

    pub async fn login(&self, input: LoginInput) -> Result<SessionGrant, AuthError> {
        let this = self.clone();
        self.finish_on_own_task(Flow::Login, async move { this.login_inner(input).await })
            .await
    }

    /// Runs a flow on its own task and records its outcome. Dropping the
    /// returned future (client gone) does not cancel the flow.
    async fn finish_on_own_task(
        &self,
        flow: Flow,
        work: impl Future<Output = Result<SessionGrant, AuthError>> + Send + 'static,
    ) -> Result<SessionGrant, AuthError> {
        let result = match tokio::spawn(work.instrument(tracing::Span::current())).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, flow = flow.label(), "flow task failed");
                Err(AuthError::StoreUnavailable)
            }
        };
        let hold = self.settings().shed_delay;
        if matches!(result, Err(AuthError::Overloaded { .. })) && !hold.is_zero() {
            // A timer, not work: a client that retries at once now comes back
            // a few times a second instead of thousands.
            tokio::time::sleep(hold).await;
        }
        let label = result
            .as_ref()
            .map_or_else(|e| e.code().outcome_label(), |_| "ok");
        self.metrics().auth(flow.label(), label);
        result
    }

    async fn define_inner(&self, input: DefineInput) -> Result<SessionGrant, AuthError> {
        let s = self.settings();
        let pesel = self.parse_pesel(&input.pesel);
        let name = MaidenName::parse(&input.mother_maiden_name);
        let password = NewPassword::parse(
            &input.password,
            &input.password_repeat,
            pesel.as_ref().ok(),
            s.min_password_length,
        );
        let mut violations = Vec::new();
        if let Err(e) = &pesel {
            violations.push(Violation::new("pesel", e.code()));
        }
        if let Err(e) = &name {
            violations.push(Violation::new("motherMaidenName", e.code()));
        }
        if let Err(list) = &password {
            violations.extend(list.iter().map(|v| Violation::new(v.field(), v.code())));
        }
        let (Ok(pesel), Ok(name), Ok(password)) = (pesel, name, password) else {
            return Err(AuthError::Validation(violations));
        };

        let (key, ticket, account) = self.open_attempt(&pesel).await?;

        // Identity: same work whether the PESEL is unknown or the name is wrong.
        let given = self.keys().maiden_tag(&name);
        let expected = account.maiden_tag.unwrap_or([0u8; 8]);
        let name_matches: bool = given.ct_eq(&expected).into();
        if !(account.registered() && name_matches) {
            return self
                .fail(Flow::Define, &key, &ticket, AuthError::IdentityNotVerified)
                .await;
        }
        // Identity verified. A conflict or a reserved PESEL is no verdict on the
        // secret: it must neither count as a failure nor clear earlier failures.
        if account.password_phc.is_some() {
            self.neutral(&key, &ticket).await?;
            return Err(AuthError::PasswordAlreadyDefined);
        }
        if account.reserved && s.refuse_reserved {
            self.neutral(&key, &ticket).await?;
            return Err(AuthError::PeselReserved);
        }
        let generation = account.generation;
        let permit = self.admit_reserved(&key, &ticket).await?;
        let phc = self.hash_new(permit, &password).await?;
        let (token, spec) = self.new_session(&pesel, super::handoff::ACR_PASSWORD)?;
        let settled = self
            .settle(
                &key,
                &ticket,
                Settle::Success {
                    generation,
                    password: PasswordWrite::Define(phc),
                    session: Some(spec),
                },
            )
            .await?;
        if settled.superseded {
            return Err(superseded(&key, AuthError::IdentityNotVerified));
        }
        if settled.already_defined {
            // Another request defined it first.
            return Err(AuthError::PasswordAlreadyDefined);
        }
        tracing::info!(event = "password_defined", cid = %key.correlation_id(), "password defined");
        grant(&key, &token, &settled)
    }

    async fn login_inner(&self, input: LoginInput) -> Result<SessionGrant, AuthError> {
        let pesel = self.parse_pesel(&input.pesel);
        let password = LoginPassword::parse(&input.password);
        let mut violations = Vec::new();
        if let Err(e) = &pesel {
            violations.push(Violation::new("pesel", e.code()));
        }
        if let Err(v) = &password {
            violations.push(Violation::new(v.field(), v.code()));
        }
        let (Ok(pesel), Ok(password)) = (pesel, password) else {
            return Err(AuthError::Validation(violations));
        };

        let (key, ticket, account) = self.open_attempt(&pesel).await?;
        let permit = self.admit_reserved(&key, &ticket).await?;
        // Unknown PESEL and no password defined verify against the dummy hash.
        let stored = account.password_phc.as_deref();
        let ok = self
            .hasher()
            .verify(&permit, password.expose(), stored)
            .await
            .unwrap_or(false);
        if !ok {
            drop(permit);
            return self
                .fail(Flow::Login, &key, &ticket, AuthError::InvalidCredentials)
                .await;
        }
        let rehash = match stored {
            Some(phc) if self.hasher().needs_rehash(phc) => {
                self.hasher().hash(&permit, password.expose()).await.ok()
            }
            _ => None,
        };
        drop(permit);
        let (token, spec) = self.new_session(&pesel, super::handoff::ACR_PASSWORD)?;
        let settled = self
            .settle(
                &key,
                &ticket,
                Settle::Success {
                    generation: account.generation,
                    password: rehash.map_or(PasswordWrite::Keep, PasswordWrite::Rehash),
                    session: Some(spec),
                },
            )
            .await?;
        if settled.superseded {
            return Err(superseded(&key, AuthError::InvalidCredentials));
        }
        if settled.session.is_none() {
            tracing::info!(event = "login_window_closed", cid = %key.correlation_id(), "survey window closed");
            return Err(AuthError::WindowClosed);
        }
        tracing::info!(event = "login_ok", cid = %key.correlation_id(), "login succeeded");
        grant(&key, &token, &settled)
    }

    /// The common opening of both flows, in the order the rules need: census
    /// period, then the cheap shed (nothing written), then the lockout
    /// reservation.
    async fn open_attempt(
        &self,
        pesel: &Pesel,
    ) -> Result<(PeselKey, String, crate::store::AccountRecord), AuthError> {
        self.check_period(self.now())?;
        let key = self.keys().pesel_key(pesel);
        if let Some(lock) = self.locks.get(&key, self.now()) {
            tracing::info!(event = "attempt_while_locked", cid = %key.correlation_id(), "attempt refused: locked");
            return Err(AuthError::Locked {
                until: lock.until,
                retry_after: lock.retry_after,
            });
        }
        self.probe_room(&key).await?;
        let (ticket, account) = self.reserve(&key).await?;
        Ok((key, ticket, account))
    }

    /// Step 3 of both flows: the lockout is consulted and an attempt reserved.
    async fn reserve(
        &self,
        key: &PeselKey,
    ) -> Result<(String, crate::store::AccountRecord), AuthError> {
        let ticket = session::random_hex(16);
        let Begun { now, outcome } = self
            .store()
            .begin_attempt(key, &ticket, &self.settings().lockout)
            .await?;
        match outcome {
            Begin::Allowed { account } => Ok((ticket, account)),
            Begin::Locked { until } => {
                tracing::info!(event = "attempt_while_locked", cid = %key.correlation_id(), "attempt refused: locked");
                Err(self.locked(key, until, now))
            }
            Begin::Contended { retry_at } => Err(AuthError::Locked {
                until: retry_at,
                retry_after: seconds_until(now, retry_at),
            }),
        }
    }

    async fn settle(
        &self,
        key: &PeselKey,
        ticket: &str,
        settle: Settle,
    ) -> Result<Settled, AuthError> {
        Ok(self
            .store()
            .settle_attempt(key, ticket, &self.settings().lockout, settle)
            .await?)
    }

    /// A failed credential check: counted, and answered 423 if it started a lock.
    async fn fail(
        &self,
        flow: Flow,
        key: &PeselKey,
        ticket: &str,
        error: AuthError,
    ) -> Result<SessionGrant, AuthError> {
        let settled = self.settle(key, ticket, Settle::Failure).await?;
        let cid = key.correlation_id();
        match settled.lock_started {
            Some(lock) => {
                self.metrics().lock_started(lock.level);
                tracing::warn!(event = "lock_started", cid = %cid, flow = flow.label(), lock_level = lock.level, "account locked");
                Err(self.locked(key, lock.until, settled.now))
            }
            None => {
                tracing::info!(event = "credentials_rejected", cid = %cid, flow = flow.label(), "credentials rejected");
                Err(error)
            }
        }
    }

    async fn neutral(&self, key: &PeselKey, ticket: &str) -> Result<(), AuthError> {
        self.settle(key, ticket, Settle::Neutral).await.map(|_| ())
    }

    /// A lock the store reported (at its time `store_now`): remembered for the
    /// next attempts on this replica (see `lock_cache`), and answered 423.
    fn locked(&self, key: &PeselKey, until: Millis, store_now: Millis) -> AuthError {
        self.locks.remember(key, until, store_now, self.now());
        AuthError::Locked {
            until,
            retry_after: seconds_until(store_now, until),
        }
    }

    /// A new password's PHC string, in the hashing slot `permit` holds (freed
    /// when it returns). A failed hash, never expected, answers as an overload.
    pub(super) async fn hash_new(
        &self,
        permit: hasher::HashPermit,
        password: &NewPassword,
    ) -> Result<String, AuthError> {
        self.hasher()
            .hash(&permit, password.expose())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "hashing failed");
                AuthError::Overloaded { retry_after: 1 }
            })
    }

    pub(super) fn overloaded(&self) -> AuthError {
        self.metrics().hash_rejected.inc();
        AuthError::Overloaded {
            retry_after: self.hasher().retry_after_secs(),
        }
    }

    /// A full hashing pool sheds the request before any attempt is reserved:
    /// under a flood, refusing must cost microseconds and leave nothing behind.
    /// One read still tells a locked account the truth (423 with its end)
    /// rather than "try again in a second".
    async fn probe_room(&self, key: &PeselKey) -> Result<(), AuthError> {
        if self.hasher().has_room() {
            return Ok(());
        }
        match self.store().locked_until(key).await? {
            Some(LockedUntil { until, now }) => {
                tracing::info!(event = "attempt_while_locked", cid = %key.correlation_id(), "attempt refused: locked");
                Err(self.locked(key, until, now))
            }
            None => Err(self.overloaded()),
        }
    }

    /// Takes the place in the pool for a reserved attempt. When another
    /// request took the last place since the probe (rare), the reservation is
    /// released in the background and the request shed.
    async fn admit_reserved(
        &self,
        key: &PeselKey,
        ticket: &str,
    ) -> Result<hasher::HashPermit, AuthError> {
        if let Some(permit) = self.hasher().try_admit() {
            return Ok(permit);
        }
        let (this, key, ticket) = (self.clone(), *key, ticket.to_owned());
        // An unreleased reservation would expire as a failure; release it even
        // if this request's future is dropped.
        tokio::spawn(async move {
            let _ = this.neutral(&key, &ticket).await;
        });
        Err(self.overloaded())
    }
}

/// The cookie for the session a successful settlement created (with its facts).
fn grant(key: &PeselKey, token: &[u8; 32], settled: &Settled) -> Result<SessionGrant, AuthError> {
    let record = settled.session.ok_or(AuthError::WindowClosed)?;
    Ok(SessionGrant {
        cookie_value: session::cookie_value(key, token),
        record,
    })
}

/// A helpline reset (or reclaim) moved the account on while this attempt was
/// in flight: it must not create a session or write a password. The caller
/// hears the ordinary refusal of its flow.
fn superseded(key: &PeselKey, error: AuthError) -> AuthError {
    tracing::warn!(event = "attempt_superseded", cid = %key.correlation_id(), "attempt begun before an account reset refused");
    error
}
