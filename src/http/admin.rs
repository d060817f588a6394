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
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessBody {
    #[schema(pattern = "^(ok|unavailable)$")]
    store: &'static str,
    registry_seeded: bool,
    shutting_down: bool,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    operation_id = "healthz",
    responses((status = 200, description = "The process runs (also HEAD).", body = Health)),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready: the store answers and the registry is loaded (also HEAD).", body = ReadinessBody),
        (status = 503, description = "Not ready (store down, seed not loaded, or shutting down).", body = ReadinessBody),
    ),
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store_ok = state.auth.store_ready().await;
    let body = ReadinessBody {
        store: if store_ok { "ok" } else { "unavailable" },
        registry_seeded: state
            .readiness
            .seeded
            .load(std::sync::atomic::Ordering::Acquire),
        shutting_down: state
            .readiness
            .shutting_down
            .load(std::sync::atomic::Ordering::Acquire),
    };
    if store_ok && state.readiness.accepting() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format.", content_type = "text/plain", body = String)),
)]
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

#[utoipa::path(
    get,
    path = "/admin/v1/accounts/{pesel}",
    tag = "admin",
    operation_id = "account",
    security(("bearer" = [])),
    params(("pesel" = String, Path, description = "The PESEL (11 digits; 422 otherwise).", example = "97071225308")),
    responses((status = 200, description = "What the helpline sees of the account.", body = crate::auth::admin::AccountView)),
)]
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

#[utoipa::path(
    post,
    path = "/admin/v1/accounts/{pesel}/unlock",
    tag = "admin",
    operation_id = "unlock",
    security(("bearer" = [])),
    params(("pesel" = String, Path, description = "The PESEL (11 digits; 422 otherwise).", example = "97071225308")),
    responses((status = 204, description = "Lock and failures cleared.")),
)]
pub async fn unlock(
    state: web::Data<AppState>,
    ctx: Ctx,
    actor: web::ReqData<Actor>,
    pesel: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    no_content(&ctx, state.auth.unlock(&pesel, &actor.0).await)
}

#[utoipa::path(
    post,
    path = "/admin/v1/accounts/{pesel}/reset",
    tag = "admin",
    operation_id = "reset",
    security(("bearer" = [])),
    params(("pesel" = String, Path, description = "The PESEL (11 digits; 422 otherwise).", example = "97071225308")),
    responses((status = 204, description = "Password and sessions removed; first login and window kept (audit-logged).")),
)]
pub async fn reset(
    state: web::Data<AppState>,
    ctx: Ctx,
    actor: web::ReqData<Actor>,
    pesel: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    no_content(&ctx, state.auth.reset(&pesel, &actor.0).await)
}

/// Unknown query parameters are refused (400 `malformed_request`).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoPeselListQuery {
    /// Page size: default 100; above 1000 is taken as 1000.
    #[param(minimum = 0)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    cursor: Option<String>,
    /// `open` (default) or `all`.
    #[param(pattern = "^(open|all)$")]
    state: Option<String>,
}

/// Newest first.
#[derive(Serialize, ToSchema)]
pub struct NoPeselList {
    requests: Vec<StoredNoPeselRequest>,
    /// The cursor of the next page, or null on the last.
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/admin/v1/no-pesel-requests",
    tag = "admin",
    operation_id = "noPeselRequests",
    security(("bearer" = [])),
    params(NoPeselListQuery),
    responses((status = 200, description = "One page of no-PESEL requests.", body = NoPeselList)),
)]
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

#[utoipa::path(
    post,
    path = "/admin/v1/no-pesel-requests/{reference}/handled",
    tag = "admin",
    operation_id = "noPeselHandled",
    security(("bearer" = [])),
    params(("reference" = String, Path, description = "The request's reference.")),
    responses((status = 204, description = "Marked handled (audit-logged).")),
)]
pub async fn no_pesel_handled(
    state: web::Data<AppState>,
    ctx: Ctx,
    actor: web::ReqData<Actor>,
    reference: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let handled = state.auth.mark_no_pesel_handled(&reference, &actor.0).await;
    no_content(&ctx, handled)
}
