//! The OpenAPI documents stay in sync with the service: every route (API.md's
//! and the route table `startup` registers from), every request body, every
//! problem code the APIs answer. Schemathesis (tests/schemathesis) then checks
//! the live answers against the same documents.

use crate::helpers::{ADMIN_TOKEN, Backend, spawn_app};
use census_login::http::routes;
use census_login::problem_code::ProblemCode;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every operation of API.md, per listener. A route added to the service
/// without its document entry (or removed from the table) fails here.
const PUBLIC: &[(&str, &str)] = &[
    ("get", "/api/v1/meta"),
    ("post", "/api/v1/pesel/check"),
    ("post", "/api/v1/password"),
    ("post", "/api/v1/login"),
    ("get", "/api/v1/session"),
    ("post", "/api/v1/logout"),
    ("post", "/api/v1/account/reclaim"),
    ("post", "/api/v1/no-pesel-requests"),
    ("get", "/api/v1/authorization-requests/{id}"),
    ("post", "/api/v1/authorization-requests/{id}/continue"),
    ("post", "/api/v1/authorization-requests/{id}/cancel"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/.well-known/openid-configuration"),
    ("get", "/oidc/authorize"),
    ("post", "/oidc/authorize"),
    ("post", "/oidc/token"),
    ("get", "/oidc/jwks"),
    ("get", "/oidc/userinfo"),
    ("post", "/oidc/userinfo"),
    ("get", "/oidc/logout"),
    ("post", "/oidc/logout"),
    ("get", "/saml/metadata"),
    ("get", "/saml/login"),
    ("post", "/saml/acs"),
    ("get", "/saml/acs"),
];

const ADMIN: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/admin/v1/accounts/{pesel}"),
    ("post", "/admin/v1/accounts/{pesel}/unlock"),
    ("post", "/admin/v1/accounts/{pesel}/reset"),
    ("get", "/admin/v1/no-pesel-requests"),
    ("post", "/admin/v1/no-pesel-requests/{reference}/handled"),
    ("get", "/admin/v1/openapi.json"),
];

/// Operations with a JSON request body, and the schema it must name.
const JSON_BODIES: &[(&str, &str)] = &[
    ("/api/v1/pesel/check", "PeselCheckBody"),
    ("/api/v1/password", "DefineBody"),
    ("/api/v1/login", "LoginBody"),
    ("/api/v1/account/reclaim", "ReclaimBody"),
    ("/api/v1/no-pesel-requests", "NoPeselBody"),
];

const METHODS: [&str; 8] = [
    "get", "post", "put", "delete", "options", "head", "patch", "trace",
];

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.insert((m.to_owned(), path.clone()));
            }
        }
    }
    ops
}

fn expected(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

/// The routes `startup` registers on a listener, from the table.
fn table(groups: &[Vec<routes::Endpoint>]) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for e in groups.iter().flatten() {
        for m in &e.methods {
            let name = serde_json::to_value(m).expect("method");
            ops.insert((name.as_str().expect("name").to_owned(), e.path.clone()));
        }
    }
    ops
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|x| refs(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// The problem codes a document's operations answer, checking on the way that
/// each problem response's codes have that response's status.
fn answered_codes(doc: &Value) -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for m in METHODS {
            let Some(responses) = item.get(m).and_then(|op| op["responses"].as_object()) else {
                continue;
            };
            for (status, response) in responses {
                let Some(schema) = response
                    .pointer("/content/application~1problem+json/schema")
                    .cloned()
                else {
                    continue;
                };
                let narrowed = &schema["allOf"][1]["properties"];
                for code in narrowed["code"]["enum"].as_array().expect("code enum") {
                    let code = code.as_str().expect("code");
                    let known = ProblemCode::ALL
                        .iter()
                        .find(|c| c.as_str() == code)
                        .unwrap_or_else(|| panic!("unknown code {code}"));
                    assert_eq!(known.status().to_string(), *status, "{code}");
                    codes.insert(code.to_owned());
                }
            }
        }
    }
    codes
}

async fn documents() -> (Value, Value) {
    let app = spawn_app(Backend::Memory, &[]).await;
    let public: Value = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.address))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let r = app
        .client
        .get(format!("{}/admin/v1/openapi.json", app.admin))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 401, "the admin document is behind the token");
    let admin: Value = app
        .admin_get("/admin/v1/openapi.json")
        .await
        .json()
        .await
        .expect("json");
    (public, admin)
}

#[tokio::test]
async fn documents_list_every_route_body_and_problem_code() {
    let (public, admin) = documents().await;
    for doc in [&public, &admin] {
        assert_eq!(doc["openapi"], "3.1.0");
    }

    // Routes: API.md's list, the document, and the table startup registers.
    assert_eq!(operations(&public), expected(PUBLIC), "public document");
    assert_eq!(operations(&admin), expected(ADMIN), "admin document");
    assert_eq!(
        table(&[
            routes::api(),
            routes::discovery(),
            routes::oidc(),
            routes::saml()
        ]),
        expected(PUBLIC),
        "public routes registered"
    );
    assert_eq!(
        table(&[routes::ops(), routes::admin()]),
        expected(ADMIN),
        "admin routes registered"
    );

    // Bodies: each named schema exists, refuses unknown fields, and every
    // reference in either document resolves.
    for (path, name) in JSON_BODIES {
        let body = &public["paths"][path]["post"]["requestBody"];
        assert_eq!(
            body.pointer("/content/application~1json/schema/$ref"),
            Some(&Value::from(format!("#/components/schemas/{name}"))),
            "{path}: {body}"
        );
        let schema = &public["components"]["schemas"][name];
        assert_eq!(schema["additionalProperties"], false, "{name}: {schema}");
    }
    for doc in [&public, &admin] {
        let mut all = Vec::new();
        refs(doc, &mut all);
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").expect("local ref");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} does not resolve"
            );
        }
    }

    // Problem codes: the problem schema's enum is ProblemCode::ALL, and every
    // code an operation can answer is documented on one. Not on an operation:
    // method_not_allowed (the answer to an undeclared method) and
    // internal_error (a 500 is a bug, never a contract).
    let all: BTreeSet<String> = ProblemCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    for doc in [&public, &admin] {
        let listed: BTreeSet<String> =
            doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
                .as_array()
                .expect("code enum")
                .iter()
                .map(|c| c.as_str().expect("code").to_owned())
                .collect();
        assert_eq!(listed, all);
    }
    let mut answered = answered_codes(&public);
    answered.extend(answered_codes(&admin));
    let not_operations: BTreeSet<String> = ["method_not_allowed", "internal_error"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let missing: Vec<&String> = all
        .difference(&answered)
        .filter(|c| !not_operations.contains(*c))
        .collect();
    assert!(missing.is_empty(), "codes on no operation: {missing:?}");

    // The admin token and the session cookie are described as such.
    assert_eq!(
        admin["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        public["components"]["securitySchemes"]["session"]["name"],
        "census_session"
    );
    assert_eq!(
        public["components"]["securitySchemes"]["session"]["in"],
        "cookie"
    );
}

/// Each documented operation is served on the listener: its route pattern (the
/// `route` label of the HTTP metrics) is the documented path.
#[tokio::test]
async fn every_documented_operation_reaches_its_route() {
    let app = spawn_app(Backend::Memory, &[]).await;
    let fill = |p: &str| {
        p.replace("{id}", "x")
            .replace("{pesel}", "97071225308")
            .replace("{reference}", "x")
    };
    for (listener, ops) in [(&app.address, PUBLIC), (&app.admin, ADMIN)] {
        for (method, path) in ops {
            let url = format!("{listener}{}", fill(path));
            let req = match *method {
                "get" => app.client.get(url),
                _ => app.client.post(url),
            };
            let r = req.bearer_auth(ADMIN_TOKEN).send().await.expect("sent");
            assert_ne!(r.status(), 405, "{method} {path}");
        }
    }
    let metrics = app.metrics().await;
    for (_, path) in PUBLIC.iter().chain(ADMIN) {
        assert!(
            metrics.contains(&format!("route=\"{path}\"")),
            "{path} was not served by its own route"
        );
    }
}

/// A method a route does not serve: 405 problem with `Allow` (RFC 9110).
#[tokio::test]
async fn undeclared_methods_get_405_with_allow() {
    let app = spawn_app(Backend::Memory, &[]).await;
    for (url, allow) in [
        (format!("{}/api/v1/meta", app.address), "GET"),
        (format!("{}/oidc/jwks", app.address), "GET, HEAD"),
        (format!("{}/oidc/authorize", app.address), "GET, POST"),
        (format!("{}/healthz", app.admin), "GET, HEAD"),
    ] {
        let r = app.client.put(&url).send().await.expect("sent");
        assert_eq!(r.status(), 405, "{url}");
        assert_eq!(
            r.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{url}"
        );
        let body: Value = r.json().await.expect("problem");
        assert_eq!(body["code"], "method_not_allowed");
    }
}
