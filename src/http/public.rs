//! The public API (API.md, "Public HTTP API").

use super::problem::Problem;
use super::{AppState, Ctx, JsonObject};
use crate::auth::flows::{DefineInput, LoginInput};
use crate::auth::session::COOKIE_NAME;
use crate::auth::{AuthError, SessionGrant};
use crate::clock::rfc3339;
use crate::domain::Violation;
use crate::store::SessionRecord;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

// Request bodies refuse unknown fields (`deny_unknown_fields`), which the
// document states as `additionalProperties: false`. The examples are a
// person of the bundled demo registry, so that a fuzzer's first requests
// reach the flows behind validation. The bodies are public, fields too, so
// that tests/fuzz can drive exactly what serde accepts into the domain parsers.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"pesel": "97071225308"}))]
pub struct PeselCheckBody {
    pub pesel: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"pesel": "97071225308", "motherMaidenName": "Włodarczyk",
    "password": "Spis2021Ok", "passwordRepeat": "Spis2021Ok"}))]
pub struct DefineBody {
    pub pesel: String,
    pub mother_maiden_name: String,
    pub password: String,
    pub password_repeat: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"pesel": "97071225308", "password": "Spis2021Ok"}))]
pub struct LoginBody {
    pub pesel: String,
    pub password: String,
}

/// Email or phone is required (422 `contact_required` otherwise).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"fullName": "Jan Kowalski", "email": "jan@example.com"}))]
pub struct NoPeselBody {
    pub full_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub message: Option<String>,
}

/// Session body of API.md (RFC 3339, UTC), with the extensions of
/// docs/national-node.md: how the person authenticated, and for a
/// login.gov.pl session whether a password exists and until when a reclaim
/// is allowed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody {
    #[schema(format = DateTime)]
    first_login_at: String,
    #[schema(format = DateTime)]
    window_ends_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    /// `urn:census:acr:password` or `urn:census:acr:login.gov.pl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    acr: Option<String>,
    /// login.gov.pl sessions only.
    #[serde(skip_serializing_if = "Option::is_none")]
    password_defined: Option<bool>,
    /// login.gov.pl sessions only: 5 minutes after the node authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    reclaim_until: Option<String>,
}

impl From<&crate::auth::node::SessionView> for SessionBody {
    fn from(v: &crate::auth::node::SessionView) -> Self {
        let mut body = SessionBody::from(&v.record);
        body.acr = v.acr.clone();
        body.password_defined = v.password_defined;
        body.reclaim_until = v.reclaim_until.map(rfc3339);
        body
    }
}

/// `POST /api/v1/account/reclaim`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"password": "Spis2021Ok", "passwordRepeat": "Spis2021Ok"}))]
pub struct ReclaimBody {
    pub password: String,
    pub password_repeat: String,
}

/// `POST /api/v1/pesel/check`: structure only, no registry look-up.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeselCheckResult {
    valid: bool,
    #[schema(format = Date)]
    birth_date: String,
    #[schema(value_type = String, pattern = "^(female|male)$")]
    sex: crate::domain::pesel::Sex,
}

#[derive(Serialize, ToSchema)]
pub struct NoPeselAccepted {
    reference: String,
}

/// `GET /api/v1/meta`: what the page needs to explain the rules.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    password_policy: PasswordPolicy,
    survey_window_days: u64,
    #[schema(format = DateTime)]
    census_opens_at: Option<String>,
    #[schema(format = DateTime)]
    census_closes_at: Option<String>,
    helpline: String,
    lockout: LockoutPolicy,
    /// The same as `lockout.maxFailures` (older pages read it here).
    max_failures: u32,
    /// The same as `lockout.baseBlockSeconds`.
    base_block_seconds: u64,
    login_gov_url: String,
    form_url: String,
    /// Whether the login.gov.pl card starts a node login (`loginGovUrl` is
    /// then `/saml/login`) or is a plain link.
    national_node: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordPolicy {
    min_length: usize,
    max_length: usize,
    require_uppercase: bool,
    require_digit: bool,
    ascii_only: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockoutPolicy {
    max_failures: u32,
    base_block_seconds: u64,
}

impl From<&SessionRecord> for SessionBody {
    fn from(r: &SessionRecord) -> Self {
        Self {
            first_login_at: rfc3339(r.first_login_at),
            window_ends_at: rfc3339(r.window_ends_at),
            expires_at: rfc3339(r.expires_at),
            acr: None,
            password_defined: None,
            reclaim_until: None,
        }
    }
}

pub fn session_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build(COOKIE_NAME, value)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(state.settings.session.cookie_secure)
        .finish()
}

/// The provider's cookie (README, "Hand-off to the census form"): the same
/// session reference as `census_session`, but `SameSite=Lax` and sent only to
/// the provider's paths, so that it survives the census form's cross-site
/// navigation to the authorization endpoint; `census_session` stays `Strict`.
pub fn op_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build(crate::oidc::OP_COOKIE_NAME, value)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path(crate::oidc::COOKIE_PATH)
        .secure(state.settings.session.cookie_secure)
        .finish()
}

fn with_session(
    state: &AppState,
    mut res: actix_web::HttpResponseBuilder,
    grant: SessionGrant,
) -> HttpResponse {
    let mut body = SessionBody::from(&grant.record);
    body.acr = Some(crate::auth::node::password_acr().to_owned());
    res.cookie(session_cookie(state, grant.cookie_value.clone()))
        .cookie(op_cookie(state, grant.cookie_value))
        .json(body)
}

#[utoipa::path(
    get,
    path = "/api/v1/meta",
    tag = "page",
    operation_id = "meta",
    responses((status = 200, description = "The rules the page explains.", body = Meta)),
)]
pub async fn meta(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(state.meta.clone())
}

#[utoipa::path(
    post,
    path = "/api/v1/pesel/check",
    tag = "page",
    operation_id = "checkPesel",
    request_body(content = PeselCheckBody, content_type = "application/json"),
    responses((status = 200, description = "A well-formed PESEL.", body = PeselCheckResult)),
)]
pub async fn check_pesel(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: web::Json<JsonObject<PeselCheckBody>>,
) -> Result<HttpResponse, Problem> {
    let JsonObject(b) = body.into_inner();
    let pesel = state.auth.parse_pesel(&b.pesel).map_err(|e| {
        ctx.problem(AuthError::Validation(vec![Violation::new(
            "pesel",
            e.code(),
        )]))
    })?;
    Ok(HttpResponse::Ok().json(PeselCheckResult {
        valid: true,
        birth_date: pesel.birth_date().to_string(),
        sex: pesel.sex(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/password",
    tag = "login",
    operation_id = "definePassword",
    request_body(content = DefineBody, content_type = "application/json"),
    responses((status = 201, description = "Password defined; logged in.", body = SessionBody,
        headers(("Set-Cookie" = String, description = "`census_session` (HttpOnly; SameSite=Strict; Path=/) and the provider's `census_op` (SameSite=Lax; Path=/oidc).")))),
)]
pub async fn define_password(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: web::Json<JsonObject<DefineBody>>,
) -> Result<HttpResponse, Problem> {
    let JsonObject(b) = body.into_inner();
    let grant = state
        .auth
        .define_password(DefineInput {
            pesel: b.pesel,
            mother_maiden_name: b.mother_maiden_name,
            password: b.password,
            password_repeat: b.password_repeat,
        })
        .await
        .map_err(|e| ctx.problem(e))?;
    Ok(with_session(&state, HttpResponse::Created(), grant))
}

#[utoipa::path(
    post,
    path = "/api/v1/login",
    tag = "login",
    operation_id = "login",
    request_body(content = LoginBody, content_type = "application/json"),
    responses((status = 200, description = "Logged in.", body = SessionBody,
        headers(("Set-Cookie" = String, description = "`census_session` (HttpOnly; SameSite=Strict; Path=/) and the provider's `census_op` (SameSite=Lax; Path=/oidc).")))),
)]
pub async fn login(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: web::Json<JsonObject<LoginBody>>,
) -> Result<HttpResponse, Problem> {
    let JsonObject(b) = body.into_inner();
    let grant = state
        .auth
        .login(LoginInput {
            pesel: b.pesel,
            password: b.password,
        })
        .await
        .map_err(|e| ctx.problem(e))?;
    Ok(with_session(&state, HttpResponse::Ok(), grant))
}

#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "login",
    operation_id = "session",
    security(("session" = [])),
    responses((status = 200, description = "The session; its idle expiry slides forward.", body = SessionBody)),
)]
pub async fn session(
    state: web::Data<AppState>,
    ctx: Ctx,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let cookie = req.cookie(COOKIE_NAME);
    let view = state
        .auth
        .session_view(cookie.as_ref().map(|c| c.value()))
        .await
        .map_err(|e| ctx.problem(e))?;
    Ok(HttpResponse::Ok().json(SessionBody::from(&view)))
}

#[utoipa::path(
    post,
    path = "/api/v1/account/reclaim",
    tag = "login",
    operation_id = "reclaim",
    security(("session" = [])),
    request_body(content = ReclaimBody, content_type = "application/json"),
    responses((status = 200, description = "Reclaimed: any earlier password replaced, every other session ended, failures and locks cleared (RULES.md).", body = SessionBody)),
)]
pub async fn reclaim(
    state: web::Data<AppState>,
    ctx: Ctx,
    req: HttpRequest,
    body: web::Json<JsonObject<ReclaimBody>>,
) -> Result<HttpResponse, Problem> {
    let JsonObject(b) = body.into_inner();
    let cookie = req.cookie(COOKIE_NAME);
    let view = state
        .auth
        .reclaim(
            cookie.as_ref().map(|c| c.value()),
            &b.password,
            &b.password_repeat,
        )
        .await
        .map_err(|e| ctx.problem(e))?;
    Ok(HttpResponse::Ok().json(SessionBody::from(&view)))
}

#[utoipa::path(
    post,
    path = "/api/v1/logout",
    tag = "login",
    operation_id = "logout",
    security(("session" = [])),
    responses((status = 204, description = "Session deleted, both cookies cleared.",
        headers(("Set-Cookie" = String, description = "Expired `census_session` and `census_op`.")))),
)]
pub async fn logout(
    state: web::Data<AppState>,
    ctx: Ctx,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let cookie = req.cookie(COOKIE_NAME);
    state
        .auth
        .logout(cookie.as_ref().map(|c| c.value()))
        .await
        .map_err(|e| ctx.problem(e))?;
    let mut gone = session_cookie(&state, String::new());
    let mut op_gone = op_cookie(&state, String::new());
    for c in [&mut gone, &mut op_gone] {
        c.set_max_age(CookieDuration::ZERO);
        c.set_expires(OffsetDateTime::UNIX_EPOCH);
    }
    Ok(HttpResponse::NoContent()
        .cookie(gone)
        .cookie(op_gone)
        .finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/no-pesel-requests",
    tag = "page",
    operation_id = "noPeselRequest",
    request_body(content = NoPeselBody, content_type = "application/json"),
    responses((status = 202, description = "Recorded for the helpline.", body = NoPeselAccepted)),
)]
pub async fn no_pesel_request(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: web::Json<JsonObject<NoPeselBody>>,
) -> Result<HttpResponse, Problem> {
    let JsonObject(b) = body.into_inner();
    let reference = state
        .auth
        .request_without_pesel(
            &b.full_name,
            b.email.as_deref(),
            b.phone.as_deref(),
            b.message.as_deref(),
        )
        .await
        .map_err(|e| ctx.problem(e))?;
    Ok(HttpResponse::Accepted().json(NoPeselAccepted { reference }))
}

/// `GET /api/v1/meta`, rendered once at start.
pub fn meta_json(settings: &crate::config::Settings) -> String {
    let s = settings;
    let secs = s.lockout.base_block.as_secs();
    let meta = Meta {
        password_policy: PasswordPolicy {
            min_length: s.password.min_length,
            max_length: crate::domain::password::MAX_LENGTH,
            require_uppercase: true,
            require_digit: true,
            ascii_only: true,
        },
        survey_window_days: s.survey.window.as_secs() / 86_400,
        census_opens_at: s.census.opens_at.and_then(|t| t.format(&Rfc3339).ok()),
        census_closes_at: s.census.closes_at.and_then(|t| t.format(&Rfc3339).ok()),
        helpline: s.census.helpline.clone(),
        lockout: LockoutPolicy {
            max_failures: s.lockout.max_failures,
            base_block_seconds: secs,
        },
        max_failures: s.lockout.max_failures,
        base_block_seconds: secs,
        login_gov_url: if s.national_node.enabled {
            "/saml/login".to_owned()
        } else {
            s.web.login_gov_url.clone()
        },
        form_url: s.web.form_url.clone(),
        national_node: s.national_node.enabled,
    };
    serde_json::to_string(&meta).unwrap_or_default()
}
