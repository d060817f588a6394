//! HTTP of the OpenID Connect provider ([`crate::oidc`]): outside `/api/v1`,
//! because relying parties send form posts and top-level navigations, not the
//! page's JSON. Errors are RFC 6749 JSON (token), `WWW-Authenticate`
//! (userinfo), redirects to the client, or an HTML page where a redirect
//! cannot be trusted. The page's two calls (which service asked, continue
//! after login) live in `/api/v1` like the rest of the page's API.

use super::AppState;
use super::problem::Problem;
use super::public::{op_cookie, session_cookie};
use crate::auth::AuthError;
use crate::auth::session::COOKIE_NAME;
use crate::oidc::OP_COOKIE_NAME;
use crate::oidc::authorize::{Authorize, Continue};
use crate::oidc::token::EndSession;
use crate::problem_code::ProblemCode;
use actix_web::cookie::{Cookie, time::Duration as CookieDuration};
use actix_web::http::header::{self, ContentType};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

/// Which service asked for the login (for the page).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitingRequest {
    client_name: String,
}

/// Where the page sends the person next (the client, with a code or an error).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedirectTo {
    #[schema(format = "uri")]
    redirect_to: String,
}

/// The authorization request (OpenID Connect Core 1.0, 3.1.2.1; PKCE S256).
#[derive(Serialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only: the provider parses the raw pairs
pub struct AuthorizeParams {
    #[schema(example = "code")]
    response_type: Option<String>,
    #[schema(example = "census-form-demo")]
    client_id: Option<String>,
    redirect_uri: Option<String>,
    #[schema(example = "openid census")]
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    #[schema(example = "S256")]
    code_challenge_method: Option<String>,
    /// `login` or `none`.
    prompt: Option<String>,
    max_age: Option<String>,
    ui_locales: Option<String>,
}

/// RP-Initiated Logout 1.0.
#[derive(Serialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only: the provider parses the raw pairs
pub struct EndSessionParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// Parameters of a GET (query) or a form POST (body).
fn params(req: &HttpRequest, body: &[u8]) -> Vec<(String, String)> {
    let bytes = if req.method() == Method::POST {
        body
    } else {
        req.query_string().as_bytes()
    };
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// The page for a request that cannot be answered with a redirect.
fn error_page(status: StatusCode, reason: &str) -> HttpResponse {
    let (pl, en) = match reason {
        "unknown_client" => (
            "Usługa, która poprosiła o logowanie, nie jest znana.",
            "The service that asked for the login is not known.",
        ),
        "redirect_uri" | "post_logout_redirect_uri" => (
            "Adres powrotu podany przez usługę nie jest zarejestrowany.",
            "The return address given by the service is not registered.",
        ),
        "store_unavailable" => (
            "Usługa logowania jest chwilowo niedostępna. Spróbuj ponownie za chwilę.",
            "The login service is temporarily unavailable. Please try again shortly.",
        ),
        "logged_out" => ("Wylogowano.", "You have been logged out."),
        _ => (
            "Żądanie logowania jest nieprawidłowe.",
            "The login request is not valid.",
        ),
    };
    let title = if reason == "logged_out" {
        "Wylogowano"
    } else {
        "Nie można kontynuować logowania"
    };
    let body = format!(
        r#"<!DOCTYPE html>
<html lang="pl"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — Narodowy Spis Powszechny Ludności i Mieszkań 2021</title><link rel="stylesheet" href="/assets/app.css"></head>
<body><main class="container" id="tresc"><h1 class="screen-title">{title}</h1>
<p id="oidc-error" data-reason="{reason}">{pl}</p><p lang="en">{en}</p>
<p><a href="/">Strona logowania</a></p></main></body></html>
"#
    );
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// `GET /.well-known/openid-configuration`.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "oidc",
    operation_id = "discovery",
    responses((status = 200, description = "OpenID Provider metadata (also HEAD).",
        body = crate::http::openapi::OpenIdConfiguration)),
)]
pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(state.oidc.discovery())
}

/// `GET /oidc/jwks`.
#[utoipa::path(
    get,
    path = "/oidc/jwks",
    tag = "oidc",
    operation_id = "jwks",
    responses((status = 200, description = "The public signing keys (also HEAD).",
        content_type = "application/jwk-set+json", body = crate::http::openapi::JwkSet)),
)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .content_type("application/jwk-set+json")
        .body(state.oidc.jwks().to_string())
}

/// `GET /oidc/authorize`.
#[utoipa::path(
    get,
    path = "/oidc/authorize",
    tag = "oidc",
    operation_id = "authorize",
    params(AuthorizeParams),
    security((), ("providerSession" = [])),
    responses(
        (status = 302, description = "To the client (code or error) or to the login page.",
            headers(("Location" = String, description = "The next address."))),
        (status = 400, description = "An error page: unknown client or unregistered redirect_uri (never a redirect).", content_type = "text/html", body = String),
        (status = 503, description = "An error page: the store is unavailable.", content_type = "text/html", body = String),
    ),
)]
pub async fn authorize(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    authorize_params(state, req, web::Bytes::new()).await
}

/// `POST /oidc/authorize`: the same parameters as a form.
#[utoipa::path(
    post,
    path = "/oidc/authorize",
    tag = "oidc",
    operation_id = "authorizeForm",
    request_body(content = AuthorizeParams, content_type = "application/x-www-form-urlencoded"),
    security((), ("providerSession" = [])),
    responses(
        (status = 302, description = "To the client (code or error) or to the login page.",
            headers(("Location" = String, description = "The next address."))),
        (status = 400, description = "An error page: unknown client or unregistered redirect_uri (never a redirect).", content_type = "text/html", body = String),
        (status = 503, description = "An error page: the store is unavailable.", content_type = "text/html", body = String),
    ),
)]
pub async fn authorize_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    authorize_params(state, req, body).await
}

async fn authorize_params(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let op = req.cookie(OP_COOKIE_NAME);
    match state
        .oidc
        .authorize(params(&req, &body), op.as_ref().map(|c| c.value()))
        .await
    {
        Ok(Authorize::ErrorPage(reason)) => error_page(StatusCode::BAD_REQUEST, reason),
        Ok(Authorize::Redirect(to) | Authorize::Login(to)) => redirect(&to),
        Err(_) => error_page(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
    }
}

/// `POST /oidc/token`.
#[utoipa::path(
    post,
    path = "/oidc/token",
    tag = "oidc",
    operation_id = "token",
    request_body(content = crate::http::openapi::TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("clientBasic" = [])),
    responses(
        (status = 200, description = "Tokens.", body = crate::http::openapi::TokenResponse),
        (status = 400, description = "RFC 6749 error (invalid_request, invalid_grant, unsupported_grant_type, ...).", body = crate::http::openapi::OAuthError),
        (status = 401, description = "invalid_client (with a Basic challenge after client_secret_basic).", body = crate::http::openapi::OAuthError),
        (status = 503, description = "temporarily_unavailable: the store is unavailable.", body = crate::http::openapi::OAuthError),
    ),
)]
pub async fn token(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
        .then_some(&body[..]);
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut res = match state.oidc.token(authorization, form).await {
        Ok(json) => HttpResponse::Ok().json(json),
        Err(e) => {
            let mut res = HttpResponse::build(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            );
            if e.basic_challenge {
                res.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="census-login""#));
            }
            res.json(serde_json::json!({"error": e.error, "error_description": e.description}))
        }
    };
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res.headers_mut()
        .insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    res
}

/// `GET`/`POST /oidc/userinfo`.
#[utoipa::path(
    method(get, post),
    path = "/oidc/userinfo",
    tag = "oidc",
    operation_id = "userinfo",
    security(("accessToken" = [])),
    responses(
        (status = 200, description = "The person's claims.", body = crate::http::openapi::UserInfo),
        (status = 401, description = "invalid_token (RFC 6750).", body = crate::http::openapi::OAuthError,
            headers(("WWW-Authenticate" = String))),
        (status = 503, description = "temporarily_unavailable.", body = crate::http::openapi::OAuthError),
    ),
)]
pub async fn userinfo(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.oidc.userinfo(authorization).await {
        Ok(Some(claims)) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(claims),
        Ok(None) => HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({"error": "invalid_token"})),
        Err(_) => HttpResponse::ServiceUnavailable()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({"error": "temporarily_unavailable"})),
    }
}

/// Cookies that delete both session cookies in the browser.
fn cleared(state: &AppState) -> [Cookie<'static>; 2] {
    let mut session = session_cookie(state, String::new());
    let mut op = op_cookie(state, String::new());
    for c in [&mut session, &mut op] {
        c.set_max_age(CookieDuration::ZERO);
        c.set_expires(time::OffsetDateTime::UNIX_EPOCH);
    }
    [session, op]
}

/// `GET /oidc/logout` (end session).
#[utoipa::path(
    get,
    path = "/oidc/logout",
    tag = "oidc",
    operation_id = "endSession",
    params(EndSessionParams),
    security((), ("providerSession" = [])),
    responses(
        (status = 302, description = "Logged out; to the registered post_logout_redirect_uri.",
            headers(("Location" = String))),
        (status = 200, description = "A logged-out page (no redirect requested).", content_type = "text/html", body = String),
        (status = 400, description = "An error page: unregistered post_logout_redirect_uri.", content_type = "text/html", body = String),
        (status = 503, description = "An error page: the store is unavailable.", content_type = "text/html", body = String),
    ),
)]
pub async fn end_session(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    end_session_params(state, req, web::Bytes::new()).await
}

/// `POST /oidc/logout`: the same parameters as a form.
#[utoipa::path(
    post,
    path = "/oidc/logout",
    tag = "oidc",
    operation_id = "endSessionForm",
    request_body(content = EndSessionParams, content_type = "application/x-www-form-urlencoded"),
    security((), ("providerSession" = [])),
    responses(
        (status = 302, description = "Logged out; to the registered post_logout_redirect_uri.",
            headers(("Location" = String))),
        (status = 200, description = "A logged-out page (no redirect requested).", content_type = "text/html", body = String),
        (status = 400, description = "An error page: unregistered post_logout_redirect_uri.", content_type = "text/html", body = String),
        (status = 503, description = "An error page: the store is unavailable.", content_type = "text/html", body = String),
    ),
)]
pub async fn end_session_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    end_session_params(state, req, body).await
}

async fn end_session_params(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let op = req.cookie(OP_COOKIE_NAME);
    let outcome = state
        .oidc
        .end_session(params(&req, &body), op.as_ref().map(|c| c.value()))
        .await;
    let (mut res, ended) = match outcome {
        Ok(EndSession::ErrorPage(reason)) => (error_page(StatusCode::BAD_REQUEST, reason), false),
        Ok(EndSession::Redirect { to, ended }) => (redirect(&to), ended),
        Ok(EndSession::LoggedOut { ended }) => (error_page(StatusCode::OK, "logged_out"), ended),
        Err(_) => (
            error_page(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            false,
        ),
    };
    if ended {
        for c in cleared(&state) {
            let _ = res.add_cookie(&c);
        }
    }
    res
}

/// `GET /api/v1/authorization-requests/{id}`: which service asked (for the page).
#[utoipa::path(
    get,
    path = "/api/v1/authorization-requests/{id}",
    tag = "oidc",
    operation_id = "waitingRequest",
    params(("id" = String, Path, description = "The waiting authorization request (from the login page's address).")),
    responses((status = 200, description = "The client that asked.", body = WaitingRequest)),
)]
pub async fn waiting_request(
    state: web::Data<AppState>,
    ctx: super::Ctx,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    match state.oidc.waiting_client_name(&id).await {
        Ok(Some(name)) => Ok(HttpResponse::Ok().json(WaitingRequest { client_name: name })),
        Ok(None) => Err(Problem::new(ProblemCode::NotFound, ctx.lang)),
        Err(e) => Err(ctx.problem(e)),
    }
}

/// `POST /api/v1/authorization-requests/{id}/continue`: after the login, the
/// address to send the person to (the client, with a code or an error).
#[utoipa::path(
    post,
    path = "/api/v1/authorization-requests/{id}/continue",
    tag = "oidc",
    operation_id = "continueRequest",
    params(("id" = String, Path, description = "The waiting authorization request (from the login page's address).")),
    security(("session" = [])),
    responses((status = 200, description = "Where to send the person.", body = RedirectTo)),
)]
pub async fn continue_request(
    state: web::Data<AppState>,
    ctx: super::Ctx,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let session = req.cookie(COOKIE_NAME);
    match state
        .oidc
        .continue_request(&id, session.as_ref().map(|c| c.value()))
        .await
    {
        Ok(Continue::Redirect(to)) => Ok(HttpResponse::Ok().json(RedirectTo { redirect_to: to })),
        Ok(Continue::LoginRequired) => Err(ctx.problem(AuthError::NotAuthenticated)),
        Ok(Continue::Unknown) => Err(Problem::new(ProblemCode::NotFound, ctx.lang)),
        Err(e) => Err(ctx.problem(e)),
    }
}

/// `POST /api/v1/authorization-requests/{id}/cancel`: back to the service
/// without a login (`access_denied`), e.g. after `survey_window_closed`.
#[utoipa::path(
    post,
    path = "/api/v1/authorization-requests/{id}/cancel",
    tag = "oidc",
    operation_id = "cancelRequest",
    params(("id" = String, Path, description = "The waiting authorization request (from the login page's address).")),
    responses((status = 200, description = "Back to the client with access_denied.", body = RedirectTo)),
)]
pub async fn cancel_request(
    state: web::Data<AppState>,
    ctx: super::Ctx,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    match state.oidc.cancel_request(&id).await {
        Ok(Some(to)) => Ok(HttpResponse::Ok().json(RedirectTo { redirect_to: to })),
        Ok(None) => Err(Problem::new(ProblemCode::NotFound, ctx.lang)),
        Err(e) => Err(ctx.problem(e)),
    }
}
