//! Cross-cutting request handling: the client's IP (believing `X-Forwarded-For`
//! only from trusted proxies), the per-IP rate limit, the CSRF `Origin` check,
//! the security headers of every answer, and one log line plus metrics per
//! request.
//!
//! Refusals made here are answered (`Ok` with a problem response), never
//! returned as errors: an error would pass the outer middleware untouched,
//! without the contract headers, the request id or its route in the metrics.

use super::AppState;
use super::problem::{Lang, Problem};
use crate::problem_code::ProblemCode;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{Error, HttpMessage, ResponseError, web};
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::Instant;
use tracing::Instrument;

/// The client address: the peer, or, when the peer is a trusted proxy, the
/// right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(req: &ServiceRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

/// Answers `req` with `problem` from inside a middleware.
pub fn refuse<B>(req: ServiceRequest, problem: Problem) -> ServiceResponse<EitherBody<B>> {
    req.into_response(problem.error_response())
        .map_into_right_body()
}

/// The headers of API.md on every answer of a listener: `csp` is the
/// listener's policy; HSTS when cookies are secure (served over TLS).
pub fn security_headers(csp: &'static str, secure: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Content-Security-Policy", csp))
        .add(("X-Frame-Options", "DENY"));
    if secure {
        headers.add((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        headers
    }
}

/// Per-client limit on the credential endpoints, shared by all replicas: a
/// refusal costs a hash and a map lookup, no I/O.
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if let Some(ip) = client_ip(&req, &state.settings.server.trusted_proxies)
        && let Err(wait_secs) = state.limiter.check(ip)
    {
        let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
        state
            .metrics
            .rate_limited
            .with_label_values(&[&route])
            .inc();
        if let Some(flow) = match route.as_str() {
            "/api/v1/login" => Some("login"),
            "/api/v1/password" => Some("define"),
            _ => None,
        } {
            state
                .metrics
                .auth(flow, ProblemCode::RateLimited.outcome_label());
        }
        let lang = Lang::from_request(req.request());
        let problem = Problem::new(ProblemCode::RateLimited, lang).retry_after(wait_secs);
        return Ok(refuse(req, problem));
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// CSRF defence for state-changing requests: a present `Origin` must be ours.
/// (Cookies are SameSite=Strict and bodies JSON-only as well.)
pub async fn check_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && let Some(state) = req.app_data::<web::Data<AppState>>()
        && let Some(origin) = req.headers().get(header::ORIGIN)
        && origin.as_bytes() != state.settings.server.public_origin.as_bytes()
    {
        let lang = Lang::from_request(req.request());
        let problem = Problem::new(ProblemCode::OriginNotAllowed, lang);
        return Ok(refuse(req, problem));
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// The `method` label: a fixed set, whatever a client sends (a made-up method
/// per request would otherwise create a series per request).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        _ => "OTHER",
    }
}

/// Request id, a span for everything logged while handling, one JSON log line
/// per request and the HTTP metrics. Logs the route pattern, never the path
/// (admin paths carry a PESEL).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    // A v4 UUID from the thread's CSPRNG: `Uuid::new_v4()` would make a
    // getrandom system call for every request.
    let mut random = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut random);
    let request_id = uuid::Builder::from_random_bytes(random)
        .into_uuid()
        .simple()
        .to_string();
    let method = method_label(req.method());
    let span = tracing::info_span!("request", request_id = %request_id);
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let result = next.call(req).instrument(span.clone()).await;
    let latency = start.elapsed();
    let (status, route) = match &result {
        Ok(res) => (
            res.status(),
            res.request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".into()),
        ),
        Err(e) => (e.as_response_error().status_code(), "unmatched".into()),
    };
    if let Some(m) = metrics {
        m.http_requests
            .with_label_values(&[&route, method, status.as_str()])
            .inc();
        m.http_duration
            .with_label_values(&[&route, method])
            .observe(latency.as_secs_f64());
    }
    span.in_scope(|| {
        tracing::info!(
            target: "census_login::access",
            method = %method,
            route = %route,
            status = status.as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request"
        )
    });
    result.map(|mut res| {
        if let Ok(v) = header::HeaderValue::from_str(&request_id) {
            res.headers_mut()
                .insert(header::HeaderName::from_static("x-request-id"), v);
        }
        res
    })
}

#[derive(Clone)]
pub struct RequestId(pub String);

/// Every error is problem+json (API.md), including the ones actix-web makes
/// itself (405 for a known path with another method, 404).
pub async fn ensure_problem(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let res = next.call(req).await?;
    // Our own error bodies (problem+json, the readiness JSON, the OIDC error
    // page) have a JSON or HTML type; actix-web's have none or plain text.
    let ours = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/") || v.as_bytes().starts_with(b"text/html")
    });
    if res.status().as_u16() < 400 || ours {
        return Ok(res.map_into_left_body());
    }
    let code = match res.status() {
        // actix-web's own 400s: a query string or path that does not parse.
        StatusCode::BAD_REQUEST => ProblemCode::MalformedRequest,
        StatusCode::NOT_FOUND => ProblemCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ProblemCode::MethodNotAllowed,
        _ => ProblemCode::InternalError,
    };
    let lang = Lang::from_request(res.request());
    let problem = Problem::new(code, lang);
    let (req, _) = res.into_parts();
    let response = actix_web::ResponseError::error_response(&problem);
    Ok(ServiceResponse::new(req, response).map_into_right_body())
}
