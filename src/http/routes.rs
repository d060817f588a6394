//! The one table of the documented routes. `startup` registers every route
//! from here, and `openapi` describes the same entries: path and methods are
//! read from each handler's `#[utoipa::path]`, so a route cannot be served
//! under another path than the document says, and a handler without an
//! annotation does not compile into the table. The page's files (`/`,
//! `/assets/…`) are registered in `startup` by hand and are not API.

use super::problem::{Lang, Problem};
use super::{admin, oidc, public, saml};
use crate::problem_code::ProblemCode::{self, *};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, ResponseError, Route, guard, web};
use utoipa::openapi::path::{HttpMethod, PathsBuilder};

/// One documented route.
pub struct Endpoint {
    /// The full path, as in the document (`{name}` segments, as actix has them).
    pub path: String,
    pub methods: Vec<HttpMethod>,
    /// GET also answers HEAD (uptime monitors, caches); not a separate operation.
    pub also_head: bool,
    /// Behind the per-IP rate limit (429 `rate_limited`).
    pub rate_limited: bool,
    /// The problem codes this route can answer besides its success.
    pub problems: Vec<ProblemCode>,
    attach: fn(Route) -> Route,
    describe: fn(PathsBuilder) -> PathsBuilder,
}

impl Endpoint {
    /// The route of `P` (a handler's `#[utoipa::path]`), handled by `attach`.
    fn of<P: utoipa::Path>(attach: fn(Route) -> Route, problems: &[ProblemCode]) -> Self {
        Self {
            path: P::path(),
            methods: P::methods(),
            also_head: false,
            rate_limited: false,
            problems: problems.to_vec(),
            attach,
            describe: PathsBuilder::path_from::<P>,
        }
    }

    fn head(mut self) -> Self {
        self.also_head = true;
        self
    }

    fn limited(mut self) -> Self {
        self.rate_limited = true;
        self.problems.push(RateLimited);
        self
    }

    /// Adds this endpoint's operations to a document's paths.
    pub fn describe(&self, paths: PathsBuilder) -> PathsBuilder {
        (self.describe)(paths)
    }

    fn route(&self) -> Route {
        let mut methods: Vec<Method> = self.methods.iter().map(actix_method).collect();
        if self.also_head {
            methods.push(Method::HEAD);
        }
        let mut any = guard::Any(guard::Method(methods.remove(0)));
        for m in methods {
            any = any.or(guard::Method(m));
        }
        (self.attach)(web::route().guard(any))
    }
}

fn actix_method(m: &HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// Registers `endpoints` in a scope mounted at `prefix` (or the app, with "").
/// Endpoints of one path share a resource: actix answers 405 from the first
/// resource whose path matches, without trying a later one.
pub fn register(cfg: &mut web::ServiceConfig, prefix: &str, endpoints: &[Endpoint]) {
    let mut done: Vec<&str> = Vec::new();
    for e in endpoints {
        if done.contains(&e.path.as_str()) {
            continue;
        }
        done.push(&e.path);
        let same: Vec<&Endpoint> = endpoints.iter().filter(|o| o.path == e.path).collect();
        let path = e.path.strip_prefix(prefix).unwrap_or(&e.path);
        let allow = allow_header(&same);
        let resource = same
            .iter()
            .fold(web::resource(path), |res, o| res.route(o.route()))
            .default_service(web::to(move |req: HttpRequest| {
                let allow = allow.clone();
                async move { method_not_allowed(&req, &allow) }
            }));
        if same.iter().any(|o| o.rate_limited) {
            cfg.service(resource.wrap(from_fn(super::middleware::rate_limit)));
        } else {
            cfg.service(resource);
        }
    }
}

/// The methods a resource answers, for `Allow` (RFC 9110: required on a 405).
fn allow_header(endpoints: &[&Endpoint]) -> String {
    let mut methods: Vec<Method> = Vec::new();
    for e in endpoints {
        let head = e.also_head.then_some(Method::HEAD);
        for m in e.methods.iter().map(actix_method).chain(head) {
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
    }
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// 405 `method_not_allowed` with the resource's `Allow`.
fn method_not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    let mut res =
        Problem::new(ProblemCode::MethodNotAllowed, Lang::from_request(req)).error_response();
    if let Ok(v) = HeaderValue::from_str(allow) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}

/// A JSON body: refused before the handler (400/413/415).
const JSON: [ProblemCode; 3] = [MalformedRequest, PayloadTooLarge, UnsupportedMediaType];

/// `/api/v1/*` on the public listener. Every state-changing request there
/// passes the `Origin` check (403 `origin_not_allowed`).
pub fn api() -> Vec<Endpoint> {
    let window = [SurveyWindowClosed, CensusNotOpen, CensusClosed];
    let store = [StoreUnavailable];
    let credential = [AccountLocked, Overloaded, StoreUnavailable];
    let post = |mut e: Endpoint| {
        e.problems.push(OriginNotAllowed);
        e
    };
    vec![
        Endpoint::of::<public::__path_meta>(|r| r.to(public::meta), &[]),
        post(Endpoint::of::<public::__path_check_pesel>(
            |r| r.to(public::check_pesel),
            &[JSON.as_slice(), &[ValidationFailed]].concat(),
        )),
        post(
            Endpoint::of::<public::__path_define_password>(
                |r| r.to(public::define_password),
                &[
                    JSON.as_slice(),
                    &[ValidationFailed, IdentityNotVerified, PeselReserved],
                    &[PasswordAlreadyDefined],
                    &window,
                    &credential,
                ]
                .concat(),
            )
            .limited(),
        ),
        post(
            Endpoint::of::<public::__path_login>(
                |r| r.to(public::login),
                &[
                    JSON.as_slice(),
                    &[ValidationFailed, InvalidCredentials, PeselReserved],
                    &window,
                    &credential,
                ]
                .concat(),
            )
            .limited(),
        ),
        Endpoint::of::<public::__path_session>(
            |r| r.to(public::session),
            &[NotAuthenticated, StoreUnavailable],
        ),
        post(Endpoint::of::<public::__path_logout>(
            |r| r.to(public::logout),
            &[NotAuthenticated, StoreUnavailable],
        )),
        post(Endpoint::of::<public::__path_reclaim>(
            |r| r.to(public::reclaim),
            &[
                JSON.as_slice(),
                &[ValidationFailed, NotAuthenticated, ReclaimNotAllowed],
                &[Overloaded, StoreUnavailable],
            ]
            .concat(),
        )),
        post(
            Endpoint::of::<public::__path_no_pesel_request>(
                |r| r.to(public::no_pesel_request),
                &[JSON.as_slice(), &[ValidationFailed], &store].concat(),
            )
            .limited(),
        ),
        Endpoint::of::<oidc::__path_waiting_request>(
            |r| r.to(oidc::waiting_request),
            &[NotFound, StoreUnavailable],
        ),
        post(Endpoint::of::<oidc::__path_continue_request>(
            |r| r.to(oidc::continue_request),
            &[NotAuthenticated, NotFound, StoreUnavailable],
        )),
        post(Endpoint::of::<oidc::__path_cancel_request>(
            |r| r.to(oidc::cancel_request),
            &[NotFound, StoreUnavailable],
        )),
        Endpoint::of::<super::openapi::__path_public_document>(
            |r| r.to(super::openapi::public_document),
            &[],
        ),
    ]
}

/// `/.well-known/openid-configuration` (at the root of the public listener).
pub fn discovery() -> Vec<Endpoint> {
    vec![Endpoint::of::<oidc::__path_discovery>(|r| r.to(oidc::discovery), &[]).head()]
}

/// `/oidc/*`: the OpenID provider's form and redirect endpoints. Their errors
/// are RFC 6749 JSON, HTML pages or redirects, not problem details, except the
/// rate limit of `/authorize`.
pub fn oidc() -> Vec<Endpoint> {
    vec![
        Endpoint::of::<oidc::__path_authorize>(|r| r.to(oidc::authorize), &[]).limited(),
        Endpoint::of::<oidc::__path_authorize_form>(|r| r.to(oidc::authorize_form), &[]).limited(),
        Endpoint::of::<oidc::__path_token>(|r| r.to(oidc::token), &[]),
        Endpoint::of::<oidc::__path_jwks>(|r| r.to(oidc::jwks), &[]).head(),
        Endpoint::of::<oidc::__path_userinfo>(|r| r.to(oidc::userinfo), &[]),
        Endpoint::of::<oidc::__path_end_session>(|r| r.to(oidc::end_session), &[]),
        Endpoint::of::<oidc::__path_end_session_form>(|r| r.to(oidc::end_session_form), &[]),
    ]
}

/// `/saml/*`: login.gov.pl. Navigations and the node's form posts: HTML
/// pages, not problem details, except the rate limit of `/saml/login` (each
/// start stores a request).
pub fn saml() -> Vec<Endpoint> {
    vec![
        Endpoint::of::<saml::__path_metadata>(|r| r.to(saml::metadata), &[]),
        Endpoint::of::<saml::__path_login>(|r| r.to(saml::login), &[]).limited(),
        Endpoint::of::<saml::__path_acs_post>(|r| r.to(saml::acs_post), &[]),
        Endpoint::of::<saml::__path_acs_artifact>(|r| r.to(saml::acs_artifact), &[]),
    ]
}

/// Health, readiness and metrics at the root of the admin listener (no token).
pub fn ops() -> Vec<Endpoint> {
    vec![
        Endpoint::of::<admin::__path_healthz>(|r| r.to(admin::healthz), &[]).head(),
        Endpoint::of::<admin::__path_readyz>(|r| r.to(admin::readyz), &[]).head(),
        Endpoint::of::<admin::__path_metrics>(|r| r.to(admin::metrics), &[]),
    ]
}

/// `/admin/v1/*`: every route is behind the bearer token (401
/// `not_authenticated`, 503 `admin_disabled` without a configured token).
pub fn admin() -> Vec<Endpoint> {
    let bearer = |mut e: Endpoint| {
        e.problems.extend([NotAuthenticated, AdminDisabled]);
        e
    };
    let account = [ValidationFailed, StoreUnavailable];
    vec![
        bearer(Endpoint::of::<admin::__path_account>(
            |r| r.to(admin::account),
            &account,
        )),
        bearer(Endpoint::of::<admin::__path_unlock>(
            |r| r.to(admin::unlock),
            &account,
        )),
        bearer(Endpoint::of::<admin::__path_reset>(
            |r| r.to(admin::reset),
            &account,
        )),
        bearer(Endpoint::of::<admin::__path_no_pesel_requests>(
            |r| r.to(admin::no_pesel_requests),
            &[MalformedRequest, ValidationFailed, StoreUnavailable],
        )),
        bearer(Endpoint::of::<admin::__path_no_pesel_handled>(
            |r| r.to(admin::no_pesel_handled),
            &[NotFound, StoreUnavailable],
        )),
        bearer(Endpoint::of::<super::openapi::__path_admin_document>(
            |r| r.to(super::openapi::admin_document),
            &[],
        )),
    ]
}
