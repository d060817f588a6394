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

// The request bodies are public, fields too, so that tests/fuzz can drive
// exactly what serde accepts into the domain parsers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeselCheckBody {
    pub pesel: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefineBody {
    pub pesel: String,
    pub mother_maiden_name: String,
    pub password: String,
    pub password_repeat: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub pesel: String,
    pub password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NoPeselBody {
    pub full_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub message: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionBody {
    first_login_at: String,
    window_ends_at: String,
    expires_at: String,
}

impl From<&SessionRecord> for SessionBody {
    fn from(r: &SessionRecord) -> Self {
        Self {
            first_login_at: rfc3339(r.first_login_at),
            window_ends_at: rfc3339(r.window_ends_at),
            expires_at: rfc3339(r.expires_at),
        }
    }
}

fn session_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build(COOKIE_NAME, value)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(state.settings.session.cookie_secure)
        .finish()
}

fn with_session(
    state: &AppState,
    mut res: actix_web::HttpResponseBuilder,
    grant: SessionGrant,
) -> HttpResponse {
    res.cookie(session_cookie(state, grant.cookie_value))
        .json(SessionBody::from(&grant.record))
}

pub async fn meta(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(state.meta.clone())
}

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
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "valid": true,
        "birthDate": pesel.birth_date().to_string(),
        "sex": pesel.sex(),
    })))
}

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

pub async fn session(
    state: web::Data<AppState>,
    ctx: Ctx,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let cookie = req.cookie(COOKIE_NAME);
    let record = state
        .auth
        .session(cookie.as_ref().map(|c| c.value()))
        .await
        .map_err(|e| ctx.problem(e))?;
    Ok(HttpResponse::Ok().json(SessionBody::from(&record)))
}

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
    gone.set_max_age(CookieDuration::ZERO);
    gone.set_expires(OffsetDateTime::UNIX_EPOCH);
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

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
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "reference": reference })))
}

/// `GET /api/v1/meta`, rendered once at start.
pub fn meta_json(settings: &crate::config::Settings) -> String {
    let s = settings;
    let secs = s.lockout.base_block.as_secs();
    serde_json::json!({
        "passwordPolicy": {
            "minLength": s.password.min_length,
            "maxLength": crate::domain::password::MAX_LENGTH,
            "requireUppercase": true,
            "requireDigit": true,
            "asciiOnly": true,
        },
        "surveyWindowDays": s.survey.window.as_secs() / 86_400,
        "censusOpensAt": s.census.opens_at.and_then(|t| t.format(&Rfc3339).ok()),
        "censusClosesAt": s.census.closes_at.and_then(|t| t.format(&Rfc3339).ok()),
        "helpline": s.census.helpline,
        "lockout": { "maxFailures": s.lockout.max_failures, "baseBlockSeconds": secs },
        "maxFailures": s.lockout.max_failures,
        "baseBlockSeconds": secs,
        "loginGovUrl": s.web.login_gov_url,
        "formUrl": s.web.form_url,
    })
    .to_string()
}
