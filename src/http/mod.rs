//! HTTP: the public API and page, the admin listener, problem+json errors and
//! middleware. Handlers are thin: extract, call [`crate::auth`], map the error.

pub mod admin;
pub mod middleware;
pub mod oidc;
pub mod openapi;
pub mod problem;
pub mod public;
pub mod routes;
pub mod saml;
pub mod web_assets;

use crate::auth::AuthService;
use crate::config::Settings;
use crate::problem_code::ProblemCode;
use actix_web::dev::Payload;
use actix_web::error::JsonPayloadError;
use actix_web::{FromRequest, HttpRequest, web};
use problem::{Lang, Problem};
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use std::fmt;
use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared by both listeners; cloned cheaply as `web::Data`.
pub struct AppState {
    pub auth: AuthService,
    /// HTTP metrics are the HTTP layer's; the same registry as the flows'.
    pub metrics: Arc<crate::metrics::Metrics>,
    pub texts: Arc<problem::TextParams>,
    pub settings: Arc<Settings>,
    pub meta: String,
    pub limiter: Arc<crate::rate_limit::SharedRateLimiter>,
    pub readiness: Arc<Readiness>,
    pub oidc: Arc<crate::oidc::Provider>,
    /// Who may use `/admin/v1`, and their audit names.
    pub admin_tokens: Arc<crate::admin_tokens::AdminTokens>,
    /// login.gov.pl, when `national_node.enabled` (and built with the feature).
    pub saml: Option<Arc<crate::saml::ServiceProvider>>,
}

/// What `/readyz` needs besides a store ping.
#[derive(Default)]
pub struct Readiness {
    /// The registry seed has been loaded.
    pub seeded: AtomicBool,
    /// SIGTERM received: stop taking new traffic.
    pub shutting_down: AtomicBool,
}

impl Readiness {
    pub fn accepting(&self) -> bool {
        self.seeded.load(Ordering::Acquire) && !self.shutting_down.load(Ordering::Acquire)
    }
}

/// The language of the request and the configured values texts mention,
/// for error responses.
pub struct Ctx {
    pub lang: Lang,
    pub texts: Arc<problem::TextParams>,
}

impl Ctx {
    pub fn problem(&self, err: crate::auth::AuthError) -> Problem {
        Problem::from_auth(err, self.lang, self.texts.clone())
    }
}

impl FromRequest for Ctx {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Ctx {
            lang: Lang::from_request(req),
            texts: texts_of(req),
        }))
    }
}

/// The configured text values of the app serving `req`.
pub fn texts_of(req: &HttpRequest) -> Arc<problem::TextParams> {
    req.app_data::<web::Data<AppState>>()
        .map(|s| s.texts.clone())
        .unwrap_or_default()
}

/// JSON bodies: 16 KiB, `application/json` required, errors as problem+json.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(16 * 1024)
        .content_type_required(true)
        .error_handler(|err, req| {
            let code = match &err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => ProblemCode::PayloadTooLarge,
                JsonPayloadError::ContentType => ProblemCode::UnsupportedMediaType,
                _ => ProblemCode::MalformedRequest,
            };
            Problem::new(code, Lang::from_request(req)).into()
        })
}

/// A request body that must be a JSON object. serde's derived structs also
/// take an array of the fields in order (`["97071225308","Spis2021Ok"]` as a
/// login); the API takes objects only (found by tests/fuzz, json_bodies).
pub struct JsonObject<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOnly<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjectOnly(PhantomData))
            .map(JsonObject)
    }
}

/// Any path or method nobody serves.
pub async fn not_found(req: HttpRequest) -> actix_web::HttpResponse {
    not_found_sync(&req)
}

pub fn not_found_sync(req: &HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    Problem::new(ProblemCode::NotFound, Lang::from_request(req)).error_response()
}
