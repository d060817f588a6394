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
pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(state.oidc.discovery())
}

/// `GET /oidc/jwks`.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .content_type("application/jwk-set+json")
        .body(state.oidc.jwks().to_string())
}

/// `GET`/`POST /oidc/authorize`.
pub async fn authorize(
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
pub async fn end_session(
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
pub async fn waiting_request(
    state: web::Data<AppState>,
    ctx: super::Ctx,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    match state.oidc.waiting_client_name(&id).await {
        Ok(Some(name)) => Ok(HttpResponse::Ok().json(serde_json::json!({ "clientName": name }))),
        Ok(None) => Err(Problem::new(ProblemCode::NotFound, ctx.lang)),
        Err(e) => Err(ctx.problem(e)),
    }
}

/// `POST /api/v1/authorization-requests/{id}/continue`: after the login, the
/// address to send the person to (the client, with a code or an error).
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
        Ok(Continue::Redirect(to)) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({ "redirectTo": to })))
        }
        Ok(Continue::LoginRequired) => Err(ctx.problem(AuthError::NotAuthenticated)),
        Ok(Continue::Unknown) => Err(Problem::new(ProblemCode::NotFound, ctx.lang)),
        Err(e) => Err(ctx.problem(e)),
    }
}

/// `POST /api/v1/authorization-requests/{id}/cancel`: back to the service
/// without a login (`access_denied`), e.g. after `survey_window_closed`.
pub async fn cancel_request(
    state: web::Data<AppState>,
    ctx: super::Ctx,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    match state.oidc.cancel_request(&id).await {
        Ok(Some(to)) => Ok(HttpResponse::Ok().json(serde_json::json!({ "redirectTo": to }))),
        Ok(None) => Err(Problem::new(ProblemCode::NotFound, ctx.lang)),
        Err(e) => Err(ctx.problem(e)),
    }
}
