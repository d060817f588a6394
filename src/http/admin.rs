//! The admin listener (API.md, "Admin listener"): health, readiness, metrics
//! and the helpline's account actions behind a bearer token.

use super::problem::{Lang, Problem};
use super::public::rfc3339;
use super::{AppState, Ctx};
use crate::auth::now_millis;
use crate::domain::window::window_end;
use crate::keys::ct_eq_secret;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};
use secrecy::ExposeSecret;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store_ok = state.auth.store().ping().await.is_ok();
    let body = serde_json::json!({
        "store": if store_ok { "ok" } else { "unavailable" },
        "registrySeeded": state.readiness.seeded.load(std::sync::atomic::Ordering::Acquire),
        "shuttingDown": state.readiness.shutting_down.load(std::sync::atomic::Ordering::Acquire),
    });
    if store_ok && state.readiness.accepting() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let m = state.auth.metrics();
    m.hash_queue_depth.set(state.auth.hasher().queued());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render())
}

/// Bearer auth for `/admin/v1`: 503 when no token is configured, 401 when the
/// token is missing or wrong (compared in constant time).
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let lang = Lang::from_request(req.request());
    let expected = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.settings.secrets.admin_token.clone());
    let Some(expected) = expected else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "admin_disabled", lang).into());
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.is_empty() || !ct_eq_secret(given.as_bytes(), expected.expose_secret().as_bytes()) {
        return Err(Problem::new(StatusCode::UNAUTHORIZED, "not_authenticated", lang).into());
    }
    next.call(req).await
}

pub async fn account(
    state: web::Data<AppState>,
    ctx: Ctx,
    pesel: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let status = state
        .auth
        .account_status(&pesel)
        .await
        .map_err(|e| ctx.problem(e))?;
    let s = state.auth.settings();
    let (a, l) = (&status.account, &status.lock);
    let now = now_millis();
    let window_ends = a
        .first_login_at
        .map(|fl| rfc3339(window_end(fl, s.window, s.period.closes_at)));
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "registered": a.registered(),
        "passwordDefined": a.password_phc.is_some(),
        "reserved": a.reserved,
        "firstLoginAt": a.first_login_at.map(rfc3339),
        "windowEndsAt": window_ends,
        "lockout": {
            "failures": l.failures,
            "lockedUntil": (l.locked_until > now).then(|| rfc3339(l.locked_until)),
            "level": l.level,
        },
    })))
}

pub async fn unlock(
    state: web::Data<AppState>,
    ctx: Ctx,
    pesel: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    state
        .auth
        .unlock(&pesel, "admin-api")
        .await
        .map_err(|e| ctx.problem(e))?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn reset(
    state: web::Data<AppState>,
    ctx: Ctx,
    pesel: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    state
        .auth
        .reset(&pesel, "admin-api")
        .await
        .map_err(|e| ctx.problem(e))?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn no_pesel_requests(
    state: web::Data<AppState>,
    ctx: Ctx,
) -> Result<HttpResponse, Problem> {
    let list = state
        .auth
        .no_pesel_requests()
        .await
        .map_err(|e| ctx.problem(e))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "requests": list })))
}
