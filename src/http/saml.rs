//! login.gov.pl endpoints (API.md, "login.gov.pl (the national node)"):
//! metadata, the start of a node login, and the Assertion Consumer Service.
//! They are navigations and the node's cross-site form posts, so they live
//! outside `/api/v1` and its JSON and `Origin` rules; refusals are HTML pages
//! (logged and counted by reason, never with message content). Without
//! `national_node.enabled` (or a build without the `national-node` feature)
//! each answers 404 `not_found`.

use super::AppState;
use super::public::{op_cookie, session_cookie};
use crate::auth::AuthError;
use crate::auth::node::NodeLoginError;
use crate::saml::Refusal;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// The browser-binding cookie of a node login in progress.
pub const BINDING_COOKIE: &str = "census_saml";
const ACS_PATH: &str = "/saml/acs";

/// `GET /saml/login`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // documentation: the handler reads the raw pairs
pub struct LoginParams {
    /// A same-origin path to return to after the login (default `/`).
    return_to: Option<String>,
}

/// `POST /saml/acs` (HTTP-POST binding).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, non_snake_case)] // documentation: the handler reads the raw pairs
pub struct AcsForm {
    SAMLResponse: String,
    RelayState: Option<String>,
}

/// `GET /saml/acs` (HTTP-Artifact binding).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)]
pub struct AcsArtifact {
    SAMLart: String,
    RelayState: Option<String>,
}

#[cfg_attr(not(feature = "national-node"), allow(dead_code))]
fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

#[cfg_attr(not(feature = "national-node"), allow(dead_code))]
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut found = pairs.iter().filter(|(k, _)| k == name);
    let first = found.next().map(|(_, v)| v.as_str());
    // A repeated parameter is ambiguous: take none.
    if found.next().is_some() { None } else { first }
}

fn binding_cookie(state: &AppState, value: String) -> Cookie<'static> {
    let secure = state.settings.session.cookie_secure;
    // The node posts the response cross-site: only `SameSite=None` (which
    // needs `Secure`) comes along then. Plain-HTTP development gets `Lax`,
    // enough for the artifact binding's top-level GET and same-site tests.
    let mut c = Cookie::build(BINDING_COOKIE, value)
        .http_only(true)
        .path(ACS_PATH)
        .secure(secure)
        .same_site(if secure {
            SameSite::None
        } else {
            SameSite::Lax
        })
        .finish();
    if let Ok(max) = i64::try_from(state.settings.national_node.request_ttl.as_secs()) {
        c.set_max_age(CookieDuration::seconds(max));
    }
    c
}

fn page(status: StatusCode, reason: &str, pl: &str, en: &str) -> HttpResponse {
    let body = format!(
        r#"<!DOCTYPE html>
<html lang="pl"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Logowanie przez login.gov.pl nie powiodło się — Narodowy Spis Powszechny Ludności i Mieszkań 2021</title><link rel="stylesheet" href="/assets/app.css"></head>
<body><main class="container" id="tresc"><h1 class="screen-title">Logowanie przez login.gov.pl nie powiodło się</h1>
<p id="saml-error" data-reason="{reason}">{pl}</p><p lang="en">{en}</p>
<p><a href="/">Strona logowania</a></p></main></body></html>
"#
    );
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// A refused response or login start: logged, counted, explained.
fn refused(state: &AppState, r: Refusal) -> HttpResponse {
    state
        .metrics
        .saml_refused
        .with_label_values(&[r.label()])
        .inc();
    tracing::warn!(
        event = "saml_refused",
        reason = r.label(),
        "login.gov.pl response refused"
    );
    let (status, pl, en) = match r {
        Refusal::LoaTooLow => (
            StatusCode::FORBIDDEN,
            "Poziom bezpieczeństwa tego sposobu logowania jest zbyt niski. Wybierz w login.gov.pl inny środek identyfikacji (profil zaufany, bankowość elektroniczna, e-dowód).",
            "The assurance level of this login method is too low. Choose another means of identification at login.gov.pl.",
        ),
        Refusal::NotInRegistry => (
            StatusCode::FORBIDDEN,
            "Nie znaleziono Twojego numeru PESEL w rejestrze spisu. Zadzwoń na infolinię spisową.",
            "Your PESEL was not found in the census register. Please call the census helpline.",
        ),
        Refusal::PeselMissing | Refusal::PeselInvalid => (
            StatusCode::FORBIDDEN,
            "login.gov.pl nie przekazał prawidłowego numeru PESEL. Zaloguj się numerem PESEL i hasłem albo zadzwoń na infolinię.",
            "login.gov.pl did not pass a valid PESEL. Log in with PESEL and password or call the helpline.",
        ),
        Refusal::Unavailable => (
            StatusCode::BAD_GATEWAY,
            "login.gov.pl jest chwilowo nieosiągalny. Spróbuj ponownie za chwilę.",
            "login.gov.pl cannot be reached right now. Please try again shortly.",
        ),
        Refusal::Disabled => (
            StatusCode::NOT_FOUND,
            "Logowanie przez login.gov.pl nie jest włączone.",
            "Login through login.gov.pl is not enabled.",
        ),
        Refusal::Malformed => (
            StatusCode::BAD_REQUEST,
            "Odpowiedź login.gov.pl jest nieprawidłowa. Zacznij logowanie od nowa.",
            "The answer from login.gov.pl is not valid. Please start the login again.",
        ),
        _ => (
            StatusCode::FORBIDDEN,
            "Odpowiedź login.gov.pl nie została przyjęta. Zacznij logowanie od nowa.",
            "The answer from login.gov.pl was not accepted. Please start the login again.",
        ),
    };
    page(status, r.label(), pl, en)
}

/// A rule of every login (census period, window) or the store.
fn auth_refused(state: &AppState, e: AuthError) -> HttpResponse {
    let code = e.code();
    let texts = &state.texts;
    let (_, pl) = code.texts(false);
    let (_, en) = code.texts(true);
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::FORBIDDEN);
    tracing::info!(
        event = "saml_login_refused",
        code = code.as_str(),
        "node login refused by a login rule"
    );
    page(
        status,
        code.as_str(),
        &texts.fill(pl, None),
        &texts.fill(en, None),
    )
}

fn disabled(state: &AppState) -> HttpResponse {
    refused(state, Refusal::Disabled)
}

#[utoipa::path(
    get,
    path = "/saml/metadata",
    tag = "login.gov.pl",
    operation_id = "samlMetadata",
    responses(
        (status = 200, description = "The SP's SAML metadata: entity ID, ACS endpoints (HTTP-Artifact, HTTP-POST), signing and encryption keys.", content_type = "application/samlmetadata+xml", body = String),
        (status = 404, description = "login.gov.pl is not enabled.", content_type = "text/html", body = String),
    ),
)]
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    #[cfg(feature = "national-node")]
    if let Some(sp) = &state.saml {
        return HttpResponse::Ok()
            .content_type("application/samlmetadata+xml")
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .body(sp.metadata().to_owned());
    }
    disabled(&state)
}

#[utoipa::path(
    get,
    path = "/saml/login",
    tag = "login.gov.pl",
    operation_id = "samlLogin",
    params(LoginParams),
    responses(
        (status = 303, description = "To the node with a signed AuthnRequest (HTTP-Redirect); sets the `census_saml` browser-binding cookie.",
            headers(("Location" = String, description = "The node's SSO URL with SAMLRequest, RelayState, SigAlg, Signature."))),
        (status = 404, description = "login.gov.pl is not enabled.", content_type = "text/html", body = String),
        (status = 503, description = "The store is unavailable.", content_type = "text/html", body = String),
    ),
)]
pub async fn login(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    #[cfg(feature = "national-node")]
    if let Some(sp) = &state.saml {
        let q = pairs(req.query_string().as_bytes());
        let return_to = crate::saml::safe_return_path(param(&q, "returnTo"));
        let outgoing = match sp.authn_request() {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "building the AuthnRequest failed");
                return refused(&state, Refusal::Unavailable);
            }
        };
        return match state
            .auth
            .file_node_request(&outgoing.id, &outgoing.relay_state, return_to)
            .await
        {
            Ok(browser) => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, outgoing.redirect_url))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .cookie(binding_cookie(&state, browser))
                .finish(),
            Err(e) => auth_refused(&state, e),
        };
    }
    let _ = &req;
    disabled(&state)
}

#[utoipa::path(
    post,
    path = "/saml/acs",
    tag = "login.gov.pl",
    operation_id = "samlAcsPost",
    request_body(content = AcsForm, content_type = "application/x-www-form-urlencoded",
        description = "HTTP-POST binding, from the node (cross-site), up to 256 KiB."),
    responses(
        (status = 303, description = "Logged in: to `/` (or the path given to /saml/login) with `census_session` and `census_op`.",
            headers(("Location" = String, description = "Same-origin path."))),
        (status = 400, description = "A malformed response.", content_type = "text/html", body = String),
        (status = 403, description = "Refused (signature, issuer, audience, recipient, time, request, replay, level of assurance, PESEL, census rules).", content_type = "text/html", body = String),
        (status = 404, description = "login.gov.pl is not enabled.", content_type = "text/html", body = String),
        (status = 503, description = "The store is unavailable.", content_type = "text/html", body = String),
    ),
)]
pub async fn acs_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    #[cfg(feature = "national-node")]
    if let Some(sp) = state.saml.clone() {
        let form = pairs(&body);
        let Some(response) = param(&form, "SAMLResponse").map(str::to_owned) else {
            return refused(&state, Refusal::Malformed);
        };
        let relay = param(&form, "RelayState").map(str::to_owned);
        let verified = match web::block(move || sp.consume_post(&response)).await {
            Ok(v) => v,
            Err(_) => Err(Refusal::Unavailable),
        };
        return finish(&state, &req, verified, relay).await;
    }
    let _ = (&req, &body);
    disabled(&state)
}

#[utoipa::path(
    get,
    path = "/saml/acs",
    tag = "login.gov.pl",
    operation_id = "samlAcsArtifact",
    params(AcsArtifact),
    responses(
        (status = 303, description = "Logged in (the artifact resolved by a signed SOAP ArtifactResolve): to `/` with `census_session` and `census_op`.",
            headers(("Location" = String, description = "Same-origin path."))),
        (status = 400, description = "A malformed response.", content_type = "text/html", body = String),
        (status = 403, description = "Refused, as for the POST binding.", content_type = "text/html", body = String),
        (status = 404, description = "login.gov.pl is not enabled.", content_type = "text/html", body = String),
        (status = 502, description = "The node's artifact resolution service cannot be reached.", content_type = "text/html", body = String),
    ),
)]
pub async fn acs_artifact(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    #[cfg(feature = "national-node")]
    if let Some(sp) = state.saml.clone() {
        let q = pairs(req.query_string().as_bytes());
        let Some(artifact) = param(&q, "SAMLart") else {
            return refused(&state, Refusal::Malformed);
        };
        let relay = param(&q, "RelayState").map(str::to_owned);
        let verified = sp.consume_artifact(artifact).await;
        return finish(&state, &req, verified, relay).await;
    }
    let _ = &req;
    disabled(&state)
}

/// The flows' part once the protocol spoke: session, cookies, redirect.
#[cfg_attr(not(feature = "national-node"), allow(dead_code))]
async fn finish(
    state: &AppState,
    req: &HttpRequest,
    verified: Result<crate::saml::Verified, Refusal>,
    relay: Option<String>,
) -> HttpResponse {
    let verified = match verified {
        Ok(v) => v,
        Err(r) => return refused(state, r),
    };
    let browser = req.cookie(BINDING_COOKIE);
    match state
        .auth
        .node_login(
            verified,
            relay.as_deref(),
            browser.as_ref().map(|c| c.value()),
            state.settings.session.cookie_secure,
        )
        .await
    {
        Ok(done) => {
            state.metrics.saml_logins.inc();
            let mut gone = binding_cookie(state, String::new());
            gone.set_max_age(CookieDuration::ZERO);
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, done.return_to))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .cookie(session_cookie(state, done.grant.cookie_value.clone()))
                .cookie(op_cookie(state, done.grant.cookie_value))
                .cookie(gone)
                .finish()
        }
        Err(NodeLoginError::Refused(r)) => refused(state, r),
        Err(NodeLoginError::Auth(e)) => auth_refused(state, e),
    }
}
