//! The OpenAPI 3.1 documents of both listeners (API.md, "OpenAPI"), built
//! from [`super::routes`] (the same table `startup` registers) and the
//! handlers' `#[utoipa::path]` annotations. Problem responses are added here
//! from each route's list of [`ProblemCode`]s, so their statuses, `code`
//! enums and `Retry-After` headers come from the one table of codes.

use super::routes::{self, Endpoint};
use crate::problem_code::ProblemCode;
use actix_web::HttpResponse;
use actix_web::http::header::ContentType;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use utoipa::openapi::path::{Operation, PathsBuilder};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat,
    Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Components, ContentBuilder, HeaderBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr,
    Schema,
};
use utoipa::{PartialSchema, ToSchema};

/// The public listener's document: `/api/v1`, discovery and `/oidc`.
pub fn public_doc() -> OpenApi {
    let endpoints: Vec<Endpoint> = [
        routes::api(),
        routes::discovery(),
        routes::oidc(),
        routes::saml(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut doc = build(
        "census-login public API",
        "The login page's JSON API (`/api/v1`) and the OpenID Connect provider. \
         Errors of `/api/v1` are RFC 9457 problem details (`application/problem+json`); \
         the provider's token and userinfo endpoints answer RFC 6749/6750 JSON errors, \
         its authorization and end-session endpoints redirects or HTML pages.",
        &endpoints,
        public_schemas(),
    );
    let schemes = doc.components.get_or_insert_with(Components::new);
    schemes.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::auth::session::COOKIE_NAME,
            "The session cookie set by `/password` and `/login` (HttpOnly, SameSite=Strict).",
        ))),
    );
    schemes.add_security_scheme(
        "providerSession",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::oidc::OP_COOKIE_NAME,
            "The provider's copy of the session (SameSite=Lax, Path=/oidc).",
        ))),
    );
    schemes.add_security_scheme(
        "accessToken",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An access token from `/oidc/token`."))
                .build(),
        ),
    );
    schemes.add_security_scheme(
        "clientBasic",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Basic)
                .description(Some(
                    "`client_secret_basic`; `client_secret_post` sends the same in the form.",
                ))
                .build(),
        ),
    );
    add_session_links(&mut doc);
    doc
}

/// The admin listener's document: `/admin/v1`, health, readiness, metrics.
pub fn admin_doc() -> OpenApi {
    let endpoints: Vec<Endpoint> = [routes::ops(), routes::admin()]
        .into_iter()
        .flatten()
        .collect();
    let mut doc = build(
        "census-login admin API",
        "The admin listener (not exposed publicly): health, readiness and metrics without \
         a token, the helpline's account actions under `/admin/v1` with \
         `Authorization: Bearer <secrets.admin_token>`.",
        &endpoints,
        admin_schemas(),
    );
    doc.components
        .get_or_insert_with(Components::new)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`secrets.admin_token`."))
                    .build(),
            ),
        );
    doc
}

static PUBLIC_JSON: LazyLock<String> =
    LazyLock::new(|| public_doc().to_pretty_json().unwrap_or_default());
static ADMIN_JSON: LazyLock<String> =
    LazyLock::new(|| admin_doc().to_pretty_json().unwrap_or_default());

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "This OpenAPI 3.1 document.", content_type = "application/json", body = Object)),
)]
pub async fn public_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(PUBLIC_JSON.as_str())
}

/// This document (bearer, like the rest of `/admin/v1`).
#[utoipa::path(
    get,
    path = "/admin/v1/openapi.json",
    tag = "admin",
    operation_id = "adminOpenapi",
    security(("bearer" = [])),
    responses((status = 200, description = "This OpenAPI 3.1 document.", content_type = "application/json", body = Object)),
)]
pub async fn admin_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(ADMIN_JSON.as_str())
}

fn build(
    title: &str,
    description: &str,
    endpoints: &[Endpoint],
    schemas: Vec<(String, RefOr<Schema>)>,
) -> OpenApi {
    let paths = endpoints
        .iter()
        .fold(PathsBuilder::new(), |paths, e| e.describe(paths))
        .build();
    let mut components = Components::new();
    components.schemas.extend(schemas);
    components
        .schemas
        .insert("Problem".into(), problem_schema().into());
    components
        .schemas
        .insert("Violation".into(), violation_schema().into());
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(title)
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(description))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build();
    for e in endpoints {
        if let Some(item) = doc.paths.paths.get_mut(&e.path) {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                add_problems(op, &e.problems);
            }
        }
    }
    doc
}

/// One response per status among `codes`, each a problem whose `code` is one
/// of that status's codes.
fn add_problems(op: &mut Operation, codes: &[ProblemCode]) {
    let mut by_status: BTreeMap<u16, Vec<ProblemCode>> = BTreeMap::new();
    for &c in codes {
        let list = by_status.entry(c.status()).or_default();
        if !list.contains(&c) {
            list.push(c);
        }
    }
    for (status, codes) in by_status {
        let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        let narrowed = ObjectBuilder::new()
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .enum_values(Some([status])),
            )
            .property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(names.clone())),
            );
        let schema = AllOfBuilder::new()
            .item(Ref::from_schema_name("Problem"))
            .item(narrowed)
            .build();
        let mut response = ResponseBuilder::new()
            .description(format!("Problem: {}.", names.join(", ")))
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Schema::AllOf(schema)))
                    .build(),
            );
        if codes.iter().any(|c| retries(*c)) {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(Some(u64::schema()))
                    .description(Some("Seconds until a retry may succeed."))
                    .build(),
            );
        }
        op.responses
            .responses
            .insert(status.to_string(), response.build().into());
    }
}

/// Codes answered with `Retry-After` (and `retryAfterSeconds`).
fn retries(code: ProblemCode) -> bool {
    matches!(
        code,
        ProblemCode::AccountLocked
            | ProblemCode::RateLimited
            | ProblemCode::Overloaded
            | ProblemCode::StoreUnavailable
    )
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// RFC 9457 problem details as `http::problem` renders them; `code` is one of
/// [`ProblemCode::ALL`].
fn problem_schema() -> Schema {
    let codes: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
    ObjectBuilder::new()
        .description(Some("RFC 9457 problem details (API.md, \"Errors\")."))
        .property(
            "type",
            string().format(Some(SchemaFormat::Custom("uri".into()))),
        )
        .property("title", string())
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(400))
                .maximum(Some(599)),
        )
        .property(
            "code",
            string()
                .enum_values(Some(codes))
                .description(Some("The stable machine-readable code.")),
        )
        .property(
            "detail",
            string().description(Some("For people: Polish, or English by Accept-Language.")),
        )
        .property(
            "violations",
            ArrayBuilder::new().items(Ref::from_schema_name("Violation")),
        )
        .property(
            "retryAfterSeconds",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .property(
            "lockedUntil",
            string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .required("type")
        .required("title")
        .required("status")
        .required("code")
        .required("detail")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build()
        .into()
}

fn violation_schema() -> Schema {
    ObjectBuilder::new()
        .description(Some("One rule violation of a 422 (codes in RULES.md)."))
        .property("field", string())
        .property("code", string())
        .property("message", string())
        .required("field")
        .required("code")
        .required("message")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build()
        .into()
}

/// Stateful testing (define or log in, then use the session, then log out):
/// the session cookie of a `Set-Cookie` answer, passed to the next call.
fn add_session_links(doc: &mut OpenApi) {
    use utoipa::openapi::link::LinkBuilder;
    let cookie = "$response.header.Set-Cookie#regex:census_session=([^;]+)";
    let link = |op: &str| {
        LinkBuilder::new()
            .operation_id(op)
            .parameter("cookie.census_session", cookie)
            .description("The session just created.")
            .build()
    };
    for (path, status) in [("/api/v1/password", "201"), ("/api/v1/login", "200")] {
        let Some(op) = doc.paths.paths.get_mut(path).and_then(|i| i.post.as_mut()) else {
            continue;
        };
        if let Some(RefOr::T(response)) = op.responses.responses.get_mut(status) {
            response
                .links
                .insert("session".into(), link("session").into());
            response
                .links
                .insert("logout".into(), link("logout").into());
        }
    }
}

fn schema_of<T: ToSchema>() -> (String, RefOr<Schema>) {
    (T::name().into_owned(), T::schema())
}

fn public_schemas() -> Vec<(String, RefOr<Schema>)> {
    use super::{oidc, public};
    vec![
        schema_of::<public::Meta>(),
        schema_of::<public::PasswordPolicy>(),
        schema_of::<public::LockoutPolicy>(),
        schema_of::<public::PeselCheckBody>(),
        schema_of::<public::PeselCheckResult>(),
        schema_of::<public::DefineBody>(),
        schema_of::<public::LoginBody>(),
        schema_of::<public::ReclaimBody>(),
        schema_of::<public::SessionBody>(),
        schema_of::<public::NoPeselBody>(),
        schema_of::<public::NoPeselAccepted>(),
        schema_of::<oidc::WaitingRequest>(),
        schema_of::<oidc::RedirectTo>(),
        schema_of::<oidc::AuthorizeParams>(),
        schema_of::<oidc::EndSessionParams>(),
        schema_of::<super::saml::AcsForm>(),
        schema_of::<OpenIdConfiguration>(),
        schema_of::<JwkSet>(),
        schema_of::<Jwk>(),
        schema_of::<TokenRequest>(),
        schema_of::<TokenResponse>(),
        schema_of::<OAuthError>(),
        schema_of::<UserInfo>(),
    ]
}

fn admin_schemas() -> Vec<(String, RefOr<Schema>)> {
    use super::admin;
    vec![
        schema_of::<admin::Health>(),
        schema_of::<admin::ReadinessBody>(),
        schema_of::<crate::auth::admin::AccountView>(),
        schema_of::<crate::auth::admin::LockoutView>(),
        schema_of::<admin::NoPeselList>(),
        schema_of::<crate::store::StoredNoPeselRequest>(),
    ]
}

// The provider's answers are built as JSON values in `crate::oidc`; these
// types describe them for the document only.

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct OpenIdConfiguration {
    #[schema(format = "uri")]
    issuer: String,
    #[schema(format = "uri")]
    authorization_endpoint: String,
    #[schema(format = "uri")]
    token_endpoint: String,
    #[schema(format = "uri")]
    jwks_uri: String,
    #[schema(format = "uri")]
    userinfo_endpoint: String,
    #[schema(format = "uri")]
    end_session_endpoint: String,
    scopes_supported: Vec<String>,
    response_types_supported: Vec<String>,
    response_modes_supported: Vec<String>,
    grant_types_supported: Vec<String>,
    subject_types_supported: Vec<String>,
    id_token_signing_alg_values_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    code_challenge_methods_supported: Vec<String>,
    prompt_values_supported: Vec<String>,
    acr_values_supported: Vec<String>,
    claims_supported: Vec<String>,
    ui_locales_supported: Vec<String>,
    authorization_response_iss_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    claims_parameter_supported: bool,
}

/// `GET /oidc/jwks`: the provider's public signing keys (RFC 7517).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct JwkSet {
    keys: Vec<Jwk>,
}

/// An EC P-256 public key.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct Jwk {
    #[schema(example = "EC")]
    kty: String,
    #[schema(example = "P-256")]
    crv: String,
    x: String,
    y: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    use_: String,
    #[schema(example = "ES256")]
    alg: String,
    kid: String,
}

/// `POST /oidc/token` (form-encoded, RFC 6749 section 4.1.3, PKCE RFC 7636).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct TokenRequest {
    #[schema(example = "authorization_code")]
    grant_type: String,
    code: String,
    #[schema(format = "uri")]
    redirect_uri: String,
    code_verifier: String,
    /// With `client_secret_post`.
    client_id: Option<String>,
    /// With `client_secret_post`.
    client_secret: Option<String>,
}

/// A successful token response.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct TokenResponse {
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: String,
    expires_in: u64,
    /// A JWS (ES256) with the claims of API.md, "ID token".
    id_token: String,
    scope: String,
}

/// An RFC 6749 (token) or RFC 6750 (userinfo) error.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct OAuthError {
    #[schema(example = "invalid_grant")]
    error: String,
    error_description: Option<String>,
}

/// `GET /oidc/userinfo`: the person's claims (`census` scope adds the rest).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct UserInfo {
    /// Pairwise pseudonym, different for each client.
    sub: String,
    pesel: Option<String>,
    /// NumericDate.
    census_window_ends_at: Option<i64>,
    /// NumericDate.
    first_login_at: Option<i64>,
}
