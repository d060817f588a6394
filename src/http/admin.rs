//! The admin listener (API.md, "Admin listener"): health, readiness, metrics
//! and the helpline's account actions behind a bearer token.

use super::middleware::refuse;
use super::problem::{Lang, Problem};
use super::{AppState, Ctx};
use crate::auth::AuthError;
use crate::auth::admin::RequestState;
use crate::domain::Violation;
use crate::problem_code::ProblemCode;
use crate::store::StoredNoPeselRequest;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, web};
use serde::{Deserialize, Serialize};

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store_ok = state.auth.store_ready().await;
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
    state.auth.refresh_gauges();
    let m = &state.metrics;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render())
}

/// The operator an admin request acts as: the name of their token's line in
/// `secrets.admin_tokens_file`, or `admin-token` for the shared token. Every
/// audit line of the request carries it as `actor`.
#[derive(Clone, Debug)]
pub struct Actor(pub String);

/// Bearer auth for `/admin/v1`: 503 when no token is configured, 401 when the
/// token is missing or wrong (SHA-256 compared in constant time); otherwise
/// the request carries its [`Actor`].
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let lang = Lang::from_request(req.request());
    let Some(tokens) = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.admin_tokens.clone())
        .filter(|t| t.configured())
    else {
        let problem = Problem::new(ProblemCode::AdminDisabled, lang);
        return Ok(refuse(req, problem));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let Some(actor) = tokens.actor(given) else {
        let problem = Problem::new(ProblemCode::NotAuthenticated, lang);
        return Ok(refuse(req, problem));
    };
    req.extensions_mut().insert(Actor(actor));
    Ok(next.call(req).await?.map_into_left_body())
}

pub async fn account(
    state: web::Data<AppState>,
    ctx: Ctx,
    actor: web::ReqData<Actor>,
    pesel: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let view = state
        .auth
        .account_view(&pesel, &actor.0)
        .await
        .map_err(|e| ctx.problem(e))?;
    Ok(HttpResponse::Ok().json(view))
}

/// 204 for an action that answers nothing else.
fn no_content<T>(ctx: &Ctx, result: Result<T, AuthError>) -> Result<HttpResponse, Problem> {
    result
        .map(|_| HttpResponse::NoContent().finish())
        .map_err(|e| ctx.problem(e))
}

pub async fn unlock(
    state: web::Data<AppState>,
    ctx: Ctx,
    actor: web::ReqData<Actor>,
    pesel: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    no_content(&ctx, state.auth.unlock(&pesel, &actor.0).await)
}

pub async fn reset(
    state: web::Data<AppState>,
    ctx: Ctx,
    actor: web::ReqData<Actor>,
    pesel: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    no_content(&ctx, state.auth.reset(&pesel, &actor.0).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoPeselListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    state: Option<String>,
}

#[derive(Serialize)]
struct NoPeselList {
    requests: Vec<StoredNoPeselRequest>,
    next: Option<String>,
}

pub async fn no_pesel_requests(
    state: web::Data<AppState>,
    ctx: Ctx,
    actor: web::ReqData<Actor>,
    query: web::Query<NoPeselListQuery>,
) -> Result<HttpResponse, Problem> {
    let q = query.into_inner();
    let list_state = match q.state.as_deref() {
        None | Some("open") => RequestState::Open,
        Some("all") => RequestState::All,
        Some(_) => {
            return Err(ctx.problem(AuthError::Validation(vec![Violation::new(
                "state",
                "state_invalid",
            )])));
        }
    };
    let page = state
        .auth
        .no_pesel_requests(q.limit, q.cursor.as_deref(), list_state, &actor.0)
        .await
        .map_err(|e| ctx.problem(e))?;
    Ok(HttpResponse::Ok().json(NoPeselList {
        requests: page.requests,
        next: page.next.map(|n| n.to_string()),
    }))
}

pub async fn no_pesel_handled(
    state: web::Data<AppState>,
    ctx: Ctx,
    actor: web::ReqData<Actor>,
    reference: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let handled = state.auth.mark_no_pesel_handled(&reference, &actor.0).await;
    no_content(&ctx, handled)
}
