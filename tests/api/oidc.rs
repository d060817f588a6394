//! The OpenID Connect provider (API.md, "Hand-off to the census form"),
//! driven as a relying party would, on every store.

use crate::both_stores;
use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use census_login::oidc::keys::verify_with;
use reqwest::redirect::Policy;
use reqwest::{Client, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

both_stores!(
    a_returning_session_gets_a_code_and_the_token_carries_verified_claims,
    the_login_page_continues_a_waiting_request_and_census_scope_adds_the_pesel,
    pkce_is_required_s256_only_and_checked,
    a_code_is_single_use_bound_to_its_client_and_redirect_uri,
    client_authentication_is_checked,
    untrusted_clients_and_redirect_uris_get_a_page_never_a_redirect,
    prompt_none_and_max_age,
    a_code_expires_after_its_ttl,
    no_hand_off_outside_the_census_period_and_no_token_past_the_window,
    a_code_redeemed_twice_at_once_succeeds_once,
    codes_and_access_tokens_die_with_the_session,
    end_session_logs_out_and_returns_to_the_client,
    keys_rotate_and_tampered_tokens_fail_verification,
    the_provider_cookie_is_lax_and_limited_to_its_paths,
);

pub const CLIENT: &str = "form";
pub const SECRET: &str = "form-secret-for-tests";
pub const REDIRECT: &str = "https://form.test/callback";
pub const LOGGED_OUT: &str = "https://form.test/logged-out";
const OTHER: &str = "other";
const OTHER_SECRET: &str = "other-secret";

/// Two P-256 keys (`openssl ecparam -genkey`, `openssl genpkey`): tests only.
const KEY_A: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIG7hvA+CCZYegOcwCKjfAxz8r+lLma5FPbylp00+UsKeoAoGCCqGSM49
AwEHoUQDQgAEYl05KjymOIej9boRspSwBsV2Tbh5zCLiQmToi5gZSQKiPrH6G8Iy
RUB6Qo7vImtKswKDrhJ2hDwdPi4knkRYRg==
-----END EC PRIVATE KEY-----
";
const KEY_B: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYRq44kuRpwxIAGJ2
BpUFohiodhurc2MykcTaRZ9wBdyhRANCAATN9idpeUxIAZSdet+S8Ulq3uKh67Ci
AKUv0k7pmTB1HK9mXeTK1IwYcKxbFUMpRyUbwJs8pK477svMAGWD66/3
-----END PRIVATE KEY-----
";

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The provider's settings for tests: two clients, key A, plus `extra`.
pub fn oidc_overrides(extra: &[(&'static str, Value)]) -> Vec<(&'static str, Value)> {
    let mut v = vec![
        (
            "oidc.clients",
            json!([
                {"id": CLIENT, "name": "Formularz testowy", "secret_sha256": sha256_hex(SECRET),
                 "redirect_uris": [REDIRECT], "post_logout_redirect_uris": [LOGGED_OUT]},
                {"id": OTHER, "secret_sha256": sha256_hex(OTHER_SECRET),
                 "redirect_uris": ["https://other.test/cb"]},
            ]),
        ),
        ("secrets.oidc_signing_keys", json!(KEY_A)),
    ];
    v.extend(extra.iter().cloned());
    v
}

async fn spawn(b: Backend, extra: &[(&'static str, Value)]) -> TestApp {
    let mut app = spawn_app(b, &oidc_overrides(extra)).await;
    app.client = browser();
    app
}

/// A browser: keeps cookies, does not follow redirects (the test reads them).
fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// What a relying party remembers between the redirect and the callback.
pub struct Rp {
    pub verifier: String,
    pub state: String,
    pub nonce: String,
}

impl Rp {
    pub fn new() -> Self {
        let rand = |n: usize| {
            let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
            URL_SAFE_NO_PAD.encode(bytes)
        };
        Self {
            verifier: rand(32),
            state: rand(12),
            nonce: rand(12),
        }
    }

    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }

    /// The authorization request's parameters, `extra` replacing or adding.
    pub fn params(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let challenge = self.challenge();
        let mut p: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            p.retain(|(pk, _)| pk != k);
            if !v.is_empty() {
                p.push((k.to_string(), v.to_string()));
            }
        }
        p
    }
}

fn query(params: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

impl TestApp {
    pub async fn authorize(&self, params: &[(String, String)]) -> Response {
        self.client
            .get(format!("{}/oidc/authorize?{}", self.address, query(params)))
            .send()
            .await
            .expect("request sent")
    }

    /// `POST /oidc/token` with `client_secret_basic` (or `post`) for `client`.
    pub async fn token_as(
        &self,
        (client, secret): (&str, &str),
        basic: bool,
        form: &[(&str, &str)],
    ) -> Response {
        let mut pairs: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut req = self.client.post(format!("{}/oidc/token", self.address));
        if basic {
            let creds = STANDARD.encode(format!("{client}:{secret}"));
            req = req.header("Authorization", format!("Basic {creds}"));
        } else {
            pairs.push(("client_id".into(), client.into()));
            pairs.push(("client_secret".into(), secret.into()));
        }
        req.header("Content-Type", "application/x-www-form-urlencoded")
            .body(query(&pairs))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn redeem(&self, code: &str, rp: &Rp) -> Response {
        self.token_as(
            (CLIENT, SECRET),
            true,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &rp.verifier),
            ],
        )
        .await
    }

    pub async fn jwks(&self) -> Value {
        self.client
            .get(format!("{}/oidc/jwks", self.address))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("jwks")
    }

    pub async fn userinfo(&self, token: &str) -> Response {
        self.client
            .get(format!("{}/oidc/userinfo", self.address))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }
}

/// The `Location` of a redirect.
pub fn location(r: &Response) -> String {
    assert_eq!(r.status(), 302, "expected a redirect");
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// The query parameters of a redirect back to `REDIRECT`.
fn callback(r: &Response) -> std::collections::HashMap<String, String> {
    let to = location(r);
    let rest = to
        .strip_prefix(&format!("{REDIRECT}?"))
        .unwrap_or_else(|| panic!("redirect to the client expected, got {to}"));
    form_urlencoded::parse(rest.as_bytes())
        .into_owned()
        .collect()
}

async fn token_error(r: Response, status: u16, error: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "status for {error}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.expect("json error");
    assert_eq!(body["error"], error, "{body}");
    body
}

/// Logs `p` in with a defined password (a session in the app's client).
async fn with_session(app: &TestApp, p: &Person) {
    assert_eq!(app.define(p, GOOD_PASSWORD).await.status(), 201);
}

/// Authorization with a session: the code from the redirect.
async fn code_for(app: &TestApp, rp: &Rp, extra: &[(&str, &str)]) -> String {
    let r = app.authorize(&rp.params(extra)).await;
    let q = callback(&r);
    assert_eq!(q.get("state"), Some(&rp.state), "{q:?}");
    q.get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {q:?}"))
}

async fn a_returning_session_gets_a_code_and_the_token_carries_verified_claims(b: Backend) {
    let app = spawn(b, &[]).await;
    // Every refusal reason is exported at zero from the start (rate() sees the first one).
    let text = app.metrics().await;
    for reason in census_login::metrics::OIDC_REFUSAL_REASONS {
        let line = format!("census_oidc_refused_total{{reason=\"{reason}\"}} 0");
        assert!(text.contains(&line), "{line}");
    }
    let disco: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(disco["issuer"], "http://census.test");
    assert_eq!(disco["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(disco["subject_types_supported"], json!(["pairwise"]));
    assert_eq!(
        disco["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    for k in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "end_session_endpoint",
    ] {
        assert!(
            disco[k]
                .as_str()
                .unwrap()
                .starts_with("http://census.test/"),
            "{k}"
        );
    }

    let p = person(0);
    with_session(&app, &p).await;
    let rp = Rp::new();
    let r = app.authorize(&rp.params(&[])).await;
    let q = callback(&r);
    assert_eq!(q["iss"], "http://census.test", "RFC 9207 iss");
    assert_eq!(q["state"], rp.state);
    let code = &q["code"];
    assert!(!code.contains(&p.pesel));

    let r = app.redeem(code, &rp).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_i64().unwrap() > 0);
    let claims = verify_with(&app.jwks().await, tokens["id_token"].as_str().unwrap())
        .expect("the ID token verifies with the JWKS");
    assert_eq!(claims["iss"], "http://census.test");
    assert_eq!(claims["aud"], CLIENT);
    assert_eq!(claims["nonce"], rp.nonce, "nonce round trip");
    assert_eq!(claims["acr"], "urn:census:acr:password");
    assert!(claims["sid"].is_string() && claims["auth_time"].is_i64());
    let sub = claims["sub"].as_str().unwrap();
    assert!(!sub.contains(&p.pesel));
    assert!(
        claims.get("pesel").is_none(),
        "no PESEL without scope census"
    );
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    let info = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info.status(), 200);
    let info: Value = info.json().await.unwrap();
    assert_eq!(info["sub"], sub);
    assert!(info.get("pesel").is_none());

    assert_eq!(app.metric_sum("census_oidc_codes_issued_total").await, 1.0);
    assert_eq!(
        app.metric_sum("census_oidc_codes_redeemed_total").await,
        1.0
    );

    // The same person again: the same pairwise sub for this client.
    let rp2 = Rp::new();
    let code = code_for(&app, &rp2, &[]).await;
    let tokens: Value = app.redeem(&code, &rp2).await.json().await.unwrap();
    let again = verify_with(&app.jwks().await, tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(again["sub"], sub);
}

async fn the_login_page_continues_a_waiting_request_and_census_scope_adds_the_pesel(b: Backend) {
    let app = spawn(b, &[]).await;
    let rp = Rp::new();
    let r = app
        .authorize(&rp.params(&[("scope", "openid census")]))
        .await;
    let to = location(&r);
    let id = to
        .strip_prefix("/?authz=")
        .expect("the login page")
        .to_owned();

    let waiting: Value = app
        .client
        .get(format!(
            "{}/api/v1/authorization-requests/{id}",
            app.address
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(waiting["clientName"], "Formularz testowy");
    let cont = |id: String| {
        let app = &app;
        async move {
            app.client
                .post(format!(
                    "{}/api/v1/authorization-requests/{id}/continue",
                    app.address
                ))
                .send()
                .await
                .unwrap()
        }
    };
    problem(cont(id.clone()).await, 401, "not_authenticated").await;

    // Password definition on the page, then the page continues the request.
    let p = person(1);
    with_session(&app, &p).await;
    let r = cont(id.clone()).await;
    assert_eq!(r.status(), 200);
    let to: Value = r.json().await.unwrap();
    let to = to["redirectTo"].as_str().unwrap();
    let q: std::collections::HashMap<String, String> =
        form_urlencoded::parse(to.strip_prefix(&format!("{REDIRECT}?")).unwrap().as_bytes())
            .into_owned()
            .collect();
    assert_eq!(q["state"], rp.state);
    problem(cont(id.clone()).await, 404, "not_found").await;

    // client_secret_post this time.
    let r = app
        .token_as(
            (CLIENT, SECRET),
            false,
            &[
                ("grant_type", "authorization_code"),
                ("code", &q["code"]),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &rp.verifier),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let claims = verify_with(&app.jwks().await, tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["pesel"], p.pesel);
    let window_end = claims["census_window_ends_at"].as_i64().unwrap();
    let first_login = claims["first_login_at"].as_i64().unwrap();
    assert_eq!(window_end - first_login, 14 * 86_400);
    assert!(claims["exp"].as_i64().unwrap() <= window_end);
    let info: Value = app
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["pesel"], p.pesel);
    assert_eq!(info["sub"], claims["sub"]);
}

async fn pkce_is_required_s256_only_and_checked(b: Backend) {
    let app = spawn(b, &[]).await;
    with_session(&app, &person(2)).await;
    let rp = Rp::new();
    for (extra, why) in [
        (
            vec![("code_challenge", ""), ("code_challenge_method", "")],
            "missing challenge",
        ),
        (vec![("code_challenge_method", "")], "missing method"),
        (
            vec![
                ("code_challenge", rp.verifier.as_str()),
                ("code_challenge_method", "plain"),
            ],
            "plain",
        ),
    ] {
        let q = callback(&app.authorize(&rp.params(&extra)).await);
        assert_eq!(q["error"], "invalid_request", "{why}");
        assert_eq!(q["state"], rp.state, "{why}");
        assert!(!q.contains_key("code"), "{why}");
    }
    let code = code_for(&app, &rp, &[]).await;
    let wrong = Rp {
        verifier: Rp::new().verifier,
        ..Rp::new()
    };
    token_error(app.redeem(&code, &wrong).await, 400, "invalid_grant").await;
    // A failed verifier spends the code: no second guess.
    token_error(app.redeem(&code, &rp).await, 400, "invalid_grant").await;
    assert_eq!(
        app.metric_sum("census_oidc_refused_total{reason=\"pkce\"}")
            .await,
        1.0
    );
}

async fn a_code_is_single_use_bound_to_its_client_and_redirect_uri(b: Backend) {
    let app = spawn(b, &[]).await;
    with_session(&app, &person(3)).await;
    let rp = Rp::new();
    let code = code_for(&app, &rp, &[]).await;
    assert_eq!(app.redeem(&code, &rp).await.status(), 200);
    token_error(app.redeem(&code, &rp).await, 400, "invalid_grant").await;

    let code = code_for(&app, &rp, &[]).await;
    let r = app
        .token_as(
            (OTHER, OTHER_SECRET),
            true,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &rp.verifier),
            ],
        )
        .await;
    token_error(r, 400, "invalid_grant").await;
    token_error(app.redeem(&code, &rp).await, 400, "invalid_grant").await;

    let code = code_for(&app, &rp, &[]).await;
    let one_off = format!("{REDIRECT}x");
    let r = app
        .token_as(
            (CLIENT, SECRET),
            true,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &one_off),
                ("code_verifier", &rp.verifier),
            ],
        )
        .await;
    token_error(r, 400, "invalid_grant").await;
    token_error(app.redeem("garbage", &rp).await, 400, "invalid_grant").await;
    assert_eq!(
        app.metric_sum("census_oidc_refused_total{reason=\"code_client\"}")
            .await,
        1.0
    );
}

async fn client_authentication_is_checked(b: Backend) {
    let app = spawn(b, &[]).await;
    with_session(&app, &person(4)).await;
    let rp = Rp::new();
    let code = code_for(&app, &rp, &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", rp.verifier.as_str()),
    ];
    let r = app.token_as((CLIENT, "wrong"), true, &form).await;
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"census-login\""
    );
    token_error(r, 401, "invalid_client").await;
    token_error(
        app.token_as((CLIENT, "wrong"), false, &form).await,
        401,
        "invalid_client",
    )
    .await;
    token_error(
        app.token_as(("nobody", SECRET), true, &form).await,
        401,
        "invalid_client",
    )
    .await;
    // Refused client authentication leaves the code alone.
    let mut bad_grant = form;
    bad_grant[0] = ("grant_type", "password");
    token_error(
        app.token_as((CLIENT, SECRET), true, &bad_grant).await,
        400,
        "unsupported_grant_type",
    )
    .await;
    let no_verifier = &form[..3];
    token_error(
        app.token_as((CLIENT, SECRET), true, no_verifier).await,
        400,
        "invalid_request",
    )
    .await;
    let r = app
        .client
        .post(format!("{}/oidc/token", app.address))
        .json(&json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    token_error(r, 400, "invalid_request").await;
    assert_eq!(
        app.token_as((CLIENT, SECRET), true, &form).await.status(),
        200
    );
}

async fn untrusted_clients_and_redirect_uris_get_a_page_never_a_redirect(b: Backend) {
    let app = spawn(b, &[]).await;
    with_session(&app, &person(5)).await;
    let rp = Rp::new();
    let one_off = format!("{}X", &REDIRECT[..REDIRECT.len() - 1]);
    for extra in [
        vec![("client_id", "nobody")],
        vec![("redirect_uri", one_off.as_str())],
        vec![("redirect_uri", "https://evil.test/callback")],
        vec![("redirect_uri", "")],
        vec![("client_id", "")],
    ] {
        let r = app.authorize(&rp.params(&extra)).await;
        assert_eq!(r.status(), 400, "{extra:?}");
        assert!(r.headers().get("location").is_none(), "{extra:?}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = r.text().await.unwrap();
        assert!(page.contains("oidc-error"), "{page}");
    }
    // A repeated parameter after a good client: an error back to the client.
    let mut params = rp.params(&[]);
    params.push(("scope".into(), "openid".into()));
    let q = callback(&app.authorize(&params).await);
    assert_eq!(q["error"], "invalid_request");
    let q = callback(
        &app.authorize(&rp.params(&[("response_type", "token")]))
            .await,
    );
    assert_eq!(q["error"], "unsupported_response_type");
    let q = callback(&app.authorize(&rp.params(&[("scope", "census")])).await);
    assert_eq!(q["error"], "invalid_scope");
    let q = callback(&app.authorize(&rp.params(&[("nonce", "")])).await);
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(app.metric_sum("census_oidc_codes_issued_total").await, 0.0);
    assert_eq!(
        app.metric_sum("census_oidc_refused_total{reason=\"redirect_uri\"}")
            .await,
        3.0
    );
}

async fn prompt_none_and_max_age(b: Backend) {
    let app = spawn(b, &[]).await;
    let rp = Rp::new();
    let q = callback(&app.authorize(&rp.params(&[("prompt", "none")])).await);
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], rp.state);
    with_session(&app, &person(6)).await;
    code_for(&app, &rp, &[("prompt", "none")]).await;
    code_for(&app, &rp, &[("max_age", "3600")]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Older than max_age, or prompt=login: to the login page, not a code.
    for extra in [("max_age", "0"), ("prompt", "login")] {
        let to = location(&app.authorize(&rp.params(&[extra])).await);
        assert!(to.starts_with("/?authz="), "{extra:?}: {to}");
    }
    let q = callback(
        &app.authorize(&rp.params(&[("prompt", "none"), ("max_age", "0")]))
            .await,
    );
    assert_eq!(q["error"], "login_required");
    let q = callback(&app.authorize(&rp.params(&[("prompt", "none login")])).await);
    assert_eq!(q["error"], "invalid_request");
    // After a fresh login the waiting prompt=login request continues.
    let to = location(&app.authorize(&rp.params(&[("prompt", "login")])).await);
    let id = to.strip_prefix("/?authz=").unwrap();
    let cont = format!(
        "{}/api/v1/authorization-requests/{id}/continue",
        app.address
    );
    problem(
        app.client.post(&cont).send().await.unwrap(),
        401,
        "not_authenticated",
    )
    .await;
    assert_eq!(
        app.login(&person(6).pesel, GOOD_PASSWORD).await.status(),
        200
    );
    assert_eq!(app.client.post(&cont).send().await.unwrap().status(), 200);
}

async fn a_code_expires_after_its_ttl(b: Backend) {
    let app = spawn(b, &[("oidc.code_ttl", json!("300ms"))]).await;
    with_session(&app, &person(7)).await;
    let rp = Rp::new();
    let code = code_for(&app, &rp, &[]).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    token_error(app.redeem(&code, &rp).await, 400, "invalid_grant").await;
}

fn rfc3339_in(secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn no_hand_off_outside_the_census_period_and_no_token_past_the_window(b: Backend) {
    let app = spawn(b, &[("census.closes_at", json!(rfc3339_in(30)))]).await;
    with_session(&app, &person(8)).await;
    let rp = Rp::new();
    let code = code_for(&app, &rp, &[]).await;
    let tokens: Value = app.redeem(&code, &rp).await.json().await.unwrap();
    let claims = verify_with(&app.jwks().await, tokens["id_token"].as_str().unwrap()).unwrap();
    let closes = time::OffsetDateTime::now_utc().unix_timestamp() + 30;
    assert!(
        claims["exp"].as_i64().unwrap() <= closes,
        "exp {} vs {closes}",
        claims["exp"]
    );
    assert!(tokens["expires_in"].as_i64().unwrap() <= 30);
    drop(app);

    let closed = spawn(b, &[("census.closes_at", json!(rfc3339_in(-60)))]).await;
    let q = callback(&closed.authorize(&rp.params(&[])).await);
    assert_eq!(q["error"], "access_denied");
    let early = spawn(b, &[("census.opens_at", json!(rfc3339_in(3600)))]).await;
    let q = callback(&early.authorize(&rp.params(&[])).await);
    assert_eq!(q["error"], "access_denied");
}

async fn a_code_redeemed_twice_at_once_succeeds_once(b: Backend) {
    let app = spawn(b, &[]).await;
    // A second replica on the same store (memory: the same app).
    let replica = match &app.store_url {
        Some(url) => {
            let mut r = spawn_with(settings(b, Some(url), &oidc_overrides(&[]))).await;
            r.client = browser();
            Some(r)
        }
        None => None,
    };
    with_session(&app, &person(9)).await;
    for _ in 0..5 {
        let rp = Rp::new();
        let code = code_for(&app, &rp, &[]).await;
        let other = replica.as_ref().unwrap_or(&app);
        let (a, b2, c, d) = tokio::join!(
            app.redeem(&code, &rp),
            other.redeem(&code, &rp),
            app.redeem(&code, &rp),
            other.redeem(&code, &rp),
        );
        let ok = [a, b2, c, d].iter().filter(|r| r.status() == 200).count();
        assert_eq!(ok, 1, "exactly one redemption wins");
    }
}

async fn codes_and_access_tokens_die_with_the_session(b: Backend) {
    let app = spawn(b, &[]).await;
    let p = person(10);
    with_session(&app, &p).await;
    let rp = Rp::new();
    let code = code_for(&app, &rp, &[]).await;
    let tokens: Value = app.redeem(&code, &rp).await.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let waiting = code_for(&app, &rp, &[]).await;
    // The helpline resets the account: every session, code and token goes.
    assert_eq!(
        app.admin_post(&format!("/admin/v1/accounts/{}/reset", p.pesel))
            .await
            .status(),
        204
    );
    token_error(app.redeem(&waiting, &rp).await, 400, "invalid_grant").await;
    let r = app.userinfo(&access).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    // The reset moved the account's generation: the code is refused for that.
    assert_eq!(
        app.metric_sum("census_oidc_refused_total{reason=\"account_reset\"}")
            .await,
        1.0
    );
    let q = callback(&app.authorize(&rp.params(&[("prompt", "none")])).await);
    assert_eq!(q["error"], "login_required");
}

async fn end_session_logs_out_and_returns_to_the_client(b: Backend) {
    let app = spawn(b, &[]).await;
    with_session(&app, &person(11)).await;
    let rp = Rp::new();
    let code = code_for(&app, &rp, &[]).await;
    let tokens: Value = app.redeem(&code, &rp).await.json().await.unwrap();
    let hint = tokens["id_token"].as_str().unwrap();
    let logout = |uri: &str| {
        let q = query(&[
            ("id_token_hint".into(), hint.into()),
            ("post_logout_redirect_uri".into(), uri.into()),
            ("state".into(), "bye-state".into()),
        ]);
        app.client
            .get(format!("{}/oidc/logout?{q}", app.address))
            .send()
    };
    // Not a registered address: a page, and the session stays.
    let r = logout("https://evil.test/").await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert_eq!(app.session().await.status(), 200);

    let r = logout(LOGGED_OUT).await.unwrap();
    assert_eq!(location(&r), format!("{LOGGED_OUT}?state=bye-state"));
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("census_session=;") || c.starts_with("census_session=\"\"")),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("census_op=")),
        "{cookies:?}"
    );
    problem(app.session().await, 401, "not_authenticated").await;
    let r = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 401);
}

async fn keys_rotate_and_tampered_tokens_fail_verification(b: Backend) {
    let old = spawn(b, &[]).await;
    with_session(&old, &person(12)).await;
    let rp = Rp::new();
    let code = code_for(&old, &rp, &[]).await;
    let tokens: Value = old.redeem(&code, &rp).await.json().await.unwrap();
    let by_a = tokens["id_token"].as_str().unwrap().to_owned();

    // The new key first, the old one still published.
    let rotated_keys = json!(format!("{KEY_B}{KEY_A}"));
    let mut new = match &old.store_url {
        Some(url) => {
            spawn_with(settings(
                b,
                Some(url),
                &oidc_overrides(&[("secrets.oidc_signing_keys", rotated_keys)]),
            ))
            .await
        }
        None => {
            spawn_app(
                b,
                &oidc_overrides(&[("secrets.oidc_signing_keys", rotated_keys)]),
            )
            .await
        }
    };
    new.client = browser();
    let jwks = new.jwks().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert!(
        verify_with(&jwks, &by_a).is_some(),
        "a token of the previous key still verifies"
    );

    with_session(&new, &person(13)).await;
    let code = code_for(&new, &rp, &[]).await;
    let tokens: Value = new.redeem(&code, &rp).await.json().await.unwrap();
    let by_b = tokens["id_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(by_b.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], jwks["keys"][0]["kid"], "the first key signs");
    assert!(
        verify_with(&old.jwks().await, by_b).is_none(),
        "the old JWKS lacks key B"
    );

    // A changed claim breaks the signature.
    let mut parts: Vec<String> = by_a.split('.').map(str::to_owned).collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("someone-else");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    assert!(verify_with(&jwks, &parts.join(".")).is_none());
}

async fn the_provider_cookie_is_lax_and_limited_to_its_paths(b: Backend) {
    let app = spawn(b, &[]).await;
    let r = app.define(&person(15), GOOD_PASSWORD).await;
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("census_session="))
        .unwrap();
    let op = cookies
        .iter()
        .find(|c| c.starts_with("census_op="))
        .unwrap();
    assert!(session.contains("SameSite=Strict"), "{session}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/oidc", "Secure"] {
        assert!(op.contains(attr), "{attr} missing: {op}");
    }
    // The same session reference in both.
    let value = |c: &str| {
        c.split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned()
    };
    assert_eq!(value(session), value(op));
    // Logout clears both.
    let out = app.logout().await;
    let cleared: Vec<&str> = out
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("census_op=") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
}

/// Redis only: a code issued before the account's generation moved (a reset
/// or reclaim on the way) is refused, even if its session were still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_from_an_older_account_generation_is_refused() {
    let app = spawn(Backend::Redis, &[]).await;
    let p = person(14);
    with_session(&app, &p).await;
    let rp = Rp::new();
    let code = code_for(&app, &rp, &[]).await;
    let key = keys().pesel_key(
        &census_login::domain::Pesel::parse(&p.pesel, time::OffsetDateTime::now_utc().date())
            .unwrap(),
    );
    let client = ::redis::Client::open(app.store_url.clone().unwrap()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = ::redis::cmd("HINCRBY")
        .arg(census_login::store::layout::person_key(&key, "acct"))
        .arg("gen")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    token_error(app.redeem(&code, &rp).await, 400, "invalid_grant").await;
    assert_eq!(
        app.metric_sum("census_oidc_refused_total{reason=\"account_reset\"}")
            .await,
        1.0
    );
}

/// Without a session every authorization request stores a waiting request:
/// the per-IP limit of the credential endpoints holds here too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_endpoint_is_rate_limited_per_ip() {
    let app = spawn(
        Backend::Memory,
        &[
            ("rate_limit.per_ip_per_minute", json!(1)),
            ("rate_limit.burst", json!(2)),
        ],
    )
    .await;
    let rp = Rp::new();
    for _ in 0..2 {
        assert_eq!(app.authorize(&rp.params(&[])).await.status(), 302);
    }
    problem(app.authorize(&rp.params(&[])).await, 429, "rate_limited").await;
}

/// The page sends the person back without a login (e.g. the survey window has
/// closed): the client learns `access_denied`, and the request is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_returns_access_denied() {
    let app = spawn(Backend::Memory, &[]).await;
    let rp = Rp::new();
    let to = location(&app.authorize(&rp.params(&[])).await);
    let id = to.strip_prefix("/?authz=").unwrap();
    let cancel = format!("{}/api/v1/authorization-requests/{id}/cancel", app.address);
    let r = app.client.post(&cancel).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let back = body["redirectTo"].as_str().unwrap();
    let q: std::collections::HashMap<String, String> = form_urlencoded::parse(
        back.strip_prefix(&format!("{REDIRECT}?"))
            .unwrap()
            .as_bytes(),
    )
    .into_owned()
    .collect();
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], rp.state);
    problem(
        app.client.post(&cancel).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
}
