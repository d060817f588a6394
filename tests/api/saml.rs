//! login.gov.pl (issue #13) against a real SAML IdP on loopback: pysaml2 7.5.5
//! with Debian's xmlsec1 (tests/saml/idp.py), configured by each test with its
//! own keys. The test plays the browser: it follows census-login's redirect to
//! the IdP, takes the auto-submitting form (HTTP-POST) or the artifact
//! redirect (HTTP-Artifact) and brings it to the ACS itself.
//!
//! A machine without python3, xmlsec1 or PyPI fails these tests with the
//! command that installs what is missing (tests/saml/setup.sh says which).

use crate::helpers::{
    Backend, GOOD_PASSWORD, RedisServer, TestApp, free_port, log_lines, person, settings,
    spawn_app, spawn_app_with_clock, spawn_with,
};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PUBLIC_ORIGIN: &str = "http://census.test";
const NODE_ACR: &str = "urn:census:acr:login.gov.pl";

/// The python of tests/saml/setup.sh (a venv with pysaml2), once per binary.
fn python() -> String {
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new(format!("{ROOT}/tests/saml/setup.sh"))
            .output()
            .expect("tests/saml/setup.sh cannot run (bash missing?)");
        assert!(
            out.status.success(),
            "the test IdP cannot be set up: {}\nInstall: apt-get install -y python3 python3-venv xmlsec1 (tests/all.sh does)",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
    })
    .clone()
}

/// tests/saml/idp.py: its keys in a temp dir, and the server once started.
struct Idp {
    port: u16,
    /// The same endpoints over TLS with a required client certificate
    /// (metadata `idp-metadata-{sig}-tls.xml`).
    tls_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// census-login's encryption key: `sp-enc` (P-256, ECDH-ES: login.gov.pl's
    /// profile) or `sp-enc-rsa` (RSA-OAEP).
    enc: &'static str,
}

impl Idp {
    fn keys() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let tls_port = loop {
            let p = free_port();
            if p != port {
                break p;
            }
        };
        let out = Command::new(python())
            .arg(format!("{ROOT}/tests/saml/idp.py"))
            .args(["keys", &dir.path().display().to_string(), "--port"])
            .arg(port.to_string())
            .arg("--ars-tls-port")
            .arg(tls_port.to_string())
            .output()
            .expect("idp.py keys");
        assert!(
            out.status.success(),
            "idp.py keys: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            port,
            tls_port,
            dir,
            child: None,
            enc: "sp-enc",
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("key file")
    }

    /// census-login's settings for this IdP (`sig`: `rsa` or `ec` metadata).
    fn overrides(&self, sig: &str) -> Vec<(&'static str, Value)> {
        let p = |n: &str| json!(self.path(n).display().to_string());
        vec![
            ("national_node.enabled", json!(true)),
            (
                "national_node.idp_metadata_file",
                p(&format!("idp-metadata-{sig}.xml")),
            ),
            ("national_node.sp_certificate_file", p("sp-sign.crt")),
            (
                "national_node.sp_encryption_certificate_file",
                p(&format!("{}.crt", self.enc)),
            ),
            ("secrets.saml_sp_key", json!(self.read("sp-sign.key"))),
            (
                "secrets.saml_sp_encryption_key",
                json!(self.read(&format!("{}.key", self.enc))),
            ),
            ("session.cookie_secure", json!(false)),
            ("server.public_origin", json!(PUBLIC_ORIGIN)),
        ]
    }

    /// Serves, fetching the SP metadata from `app`, and waits for READY.
    fn serve(&mut self, app: &TestApp, sig: &str) {
        let log = self.dir.path().join("idp-serve.log");
        let mut child = Command::new(python())
            .arg(format!("{ROOT}/tests/saml/idp.py"))
            .args(["serve", &self.dir.path().display().to_string(), "--port"])
            .arg(self.port.to_string())
            .args([
                "--sp-metadata-url",
                &format!("{}/saml/metadata", app.address),
            ])
            .args(["--sig", sig])
            .arg("--ars-tls-port")
            .arg(self.tls_port.to_string())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                // Kept for the failure message below.
                Stdio::from(std::fs::File::create(&log).expect("idp log file"))
            })
            .spawn()
            .expect("idp.py serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("idp.py output");
        assert_eq!(
            line.trim(),
            "READY",
            "idp.py serve did not start; its stderr:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.child = Some(child);
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The behaviour of the following logins (unset keys: the defaults).
    async fn control(&self, c: Value) {
        let r = Client::new()
            .post(format!("{}/control", self.url()))
            .json(&c)
            .send()
            .await
            .expect("control");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The service and its IdP, ready for node logins; assertions are encrypted
/// (when they are) by ECDH-ES to census-login's P-256 key.
async fn node_app(backend: Backend, sig: &str) -> (TestApp, Idp) {
    node_app_enc(backend, sig, "sp-enc").await
}

/// The same with census-login's encryption key `enc` (`sp-enc-rsa`: RSA-OAEP).
async fn node_app_enc(backend: Backend, sig: &str, enc: &'static str) -> (TestApp, Idp) {
    let mut idp = Idp::keys();
    idp.enc = enc;
    let app = spawn_app(backend, &idp.overrides(sig)).await;
    idp.serve(&app, sig);
    (app, idp)
}

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A client that keeps no cookies (the test sends them itself).
fn cookieless() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// What the IdP handed the browser for the ACS.
#[derive(Clone, Debug)]
enum Delivery {
    Post {
        response: String,
        relay: Option<String>,
    },
    Artifact {
        query: String,
    },
}

fn hidden(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &page[at + name.len() + 15..];
    Some(
        rest[..rest.find('"')?]
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'"),
    )
}

/// `/saml/login` → the IdP → what it sends back (not yet brought to the ACS).
async fn start_login(app: &TestApp, b: &Client) -> Delivery {
    let r = b
        .get(format!("{}/saml/login", app.address))
        .send()
        .await
        .expect("/saml/login");
    assert_eq!(r.status(), 303, "/saml/login");
    let to_idp = location(&r);
    let r = b.get(&to_idp).send().await.expect("IdP SSO");
    match r.status() {
        StatusCode::OK => {
            let page = r.text().await.expect("form");
            Delivery::Post {
                response: hidden(&page, "SAMLResponse").expect("SAMLResponse in the form"),
                relay: hidden(&page, "RelayState"),
            }
        }
        StatusCode::FOUND => {
            let loc = location(&r);
            let acs = format!("{PUBLIC_ORIGIN}/saml/acs?");
            let query = loc
                .strip_prefix(&acs)
                .unwrap_or_else(|| panic!("artifact redirect to {loc}"))
                .to_owned();
            Delivery::Artifact { query }
        }
        s => panic!("IdP answered {s}: {}", r.text().await.unwrap_or_default()),
    }
}

/// Brings the delivery to `app`'s ACS (the real address of `PUBLIC_ORIGIN`).
async fn deliver(app: &TestApp, b: &Client, d: &Delivery) -> Response {
    match d {
        Delivery::Post { response, relay } => {
            let mut form = vec![("SAMLResponse", response.as_str())];
            if let Some(r) = relay {
                form.push(("RelayState", r.as_str()));
            }
            post_form(b, format!("{}/saml/acs", app.address), &form)
                .send()
                .await
                .expect("ACS POST")
        }
        Delivery::Artifact { query } => b
            .get(format!("{}/saml/acs?{query}", app.address))
            .send()
            .await
            .expect("ACS GET"),
    }
}

async fn node_login(app: &TestApp, b: &Client) -> Response {
    let d = start_login(app, b).await;
    deliver(app, b, &d).await
}

/// A form post (`application/x-www-form-urlencoded`), as the IdP's page sends it.
fn post_form(b: &Client, url: String, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    b.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_owned()
}

fn sets_session(r: &Response) -> bool {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.starts_with("census_session=")))
}

async fn session(app: &TestApp, b: &Client) -> Response {
    b.get(format!("{}/api/v1/session", app.address))
        .send()
        .await
        .expect("session")
}

/// A successful node login: 303 to `/` with the session, whose body says how.
async fn assert_logged_in(app: &TestApp, b: &Client, r: Response) -> Value {
    let status = r.status();
    let loc = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let has = sets_session(&r);
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, 303, "ACS: {body}");
    assert_eq!(loc.as_deref(), Some("/"));
    assert!(has, "no census_session cookie");
    assert!(
        app.metric_sum("census_saml_logins_total").await >= 1.0,
        "a node login is counted"
    );
    let s = session(app, b).await;
    assert_eq!(s.status(), 200);
    let s: Value = s.json().await.expect("session body");
    assert_eq!(s["acr"], NODE_ACR, "{s}");
    s
}

/// A refusal: an HTML page naming the reason, no session, counted by reason.
async fn assert_refused(app: &TestApp, b: &Client, r: Response, status: u16, reason: &str) {
    assert_eq!(r.status(), status, "refusal status for {reason}");
    assert!(
        !sets_session(&r),
        "a refused response set a session ({reason})"
    );
    assert!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/html")),
        "an HTML page"
    );
    let page = r.text().await.expect("page");
    assert!(
        page.contains(&format!("data-reason=\"{reason}\"")),
        "expected reason {reason}: {page}"
    );
    assert_eq!(
        session(app, b).await.status(),
        401,
        "no session after {reason}"
    );
    assert!(
        app.metric_sum(&format!("census_saml_refused_total{{reason=\"{reason}\"}}"))
            .await
            >= 1.0
    );
}

async fn refused_with(app: &TestApp, idp: &Idp, control: Value, status: u16, reason: &str) {
    idp.control(control).await;
    let b = browser();
    let r = node_login(app, &b).await;
    assert_refused(app, &b, r, status, reason).await;
}

#[tokio::test]
async fn metadata_publishes_the_entity_acs_and_both_keys() {
    let idp = Idp::keys();
    let app = spawn_app(Backend::Memory, &idp.overrides("rsa")).await;
    let r = app.get("/saml/metadata").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/samlmetadata+xml"
    );
    let xml = r.text().await.unwrap();
    assert!(xml.contains(&format!("entityID=\"{PUBLIC_ORIGIN}/saml/metadata\"")));
    assert!(xml.contains(&format!("Location=\"{PUBLIC_ORIGIN}/saml/acs\"")));
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"));
    assert!(xml.contains("use=\"signing\"") && xml.contains("use=\"encryption\""));
    // The P-256 encryption key takes ECDH-ES and AES key wrap, not RSA-OAEP;
    // an RSA one the other way round. The data is AES-GCM either way.
    for (enc, has, lacks) in [
        ("sp-enc", "xmlenc11#ECDH-ES", "rsa-oaep"),
        ("sp-enc-rsa", "rsa-oaep-mgf1p", "ECDH-ES"),
    ] {
        let mut idp = Idp::keys();
        idp.enc = enc;
        let app = spawn_app(Backend::Memory, &idp.overrides("rsa")).await;
        let xml = app.get("/saml/metadata").await.text().await.unwrap();
        assert!(xml.contains(has) && !xml.contains(lacks), "{enc}: {xml}");
        assert!(xml.contains("xmlenc11#aes256-gcm"), "{xml}");
    }
    // The meta document switches the login.gov.pl card to the node login.
    let meta: Value = app.get("/api/v1/meta").await.json().await.unwrap();
    assert_eq!(meta["nationalNode"], true);
    assert_eq!(meta["loginGovUrl"], "/saml/login");
}

#[tokio::test]
async fn without_the_node_enabled_the_routes_are_404_and_the_card_a_link() {
    let app = spawn_app(Backend::Memory, &[]).await;
    for path in ["/saml/metadata", "/saml/login", "/saml/acs?SAMLart=x"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    let meta: Value = app.get("/api/v1/meta").await.json().await.unwrap();
    assert_eq!(meta["nationalNode"], false);
    assert_eq!(meta["loginGovUrl"], "https://login.gov.pl/");
}

#[tokio::test]
async fn the_authn_request_is_signed_and_asks_for_the_eidas_person_at_the_minimum_loa() {
    let (app, _idp) = node_app(Backend::Memory, "rsa").await;
    let b = browser();
    let r = b
        .get(format!("{}/saml/login", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    let query: Vec<(String, String)> =
        form_urlencoded::parse(loc.split_once('?').expect("a query").1.as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} missing"))
    };
    assert_eq!(
        get("SigAlg"),
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    );
    use base64::Engine;
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(get("SAMLRequest"))
        .unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::DeflateDecoder::new(deflated.as_slice()),
        &mut xml,
    )
    .unwrap();
    for needle in [
        "Comparison=\"minimum\"",
        "http://eidas.europa.eu/LoA/substantial",
        "http://eidas.europa.eu/attributes/naturalperson/PersonIdentifier",
        "<eidas:SPType>public</eidas:SPType>",
        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact",
    ] {
        assert!(xml.contains(needle), "{needle} not in {xml}");
    }
    // The IdP checks the query signature: a changed RelayState is refused
    // (negative control of the signature the node relies on).
    let r = b.get(&loc).send().await.unwrap();
    assert_eq!(r.status(), 200, "the IdP accepted the signed request");
    let tampered = loc.replace("RelayState=_", "RelayState=_0");
    let r = b.get(&tampered).send().await.unwrap();
    assert_eq!(
        r.status(),
        400,
        "the IdP refused a request changed after signing"
    );
}

macro_rules! node_stores {
    ($name:ident, $sig:literal, $binding:literal, $encrypt:literal, $enc:literal) => {
        #[tokio::test]
        async fn $name() {
            for backend in [Backend::Memory, Backend::Redis] {
                let (app, idp) = node_app_enc(backend, $sig, $enc).await;
                idp.control(json!({"binding": $binding, "encrypt": $encrypt}))
                    .await;
                let b = browser();
                let r = node_login(&app, &b).await;
                let s = assert_logged_in(&app, &b, r).await;
                // A first login: the window opened, no password yet.
                assert_eq!(s["passwordDefined"], false, "{backend:?}");
                assert!(s["reclaimUntil"].is_string(), "{s}");
                let account = app.account(&person(0).pesel).await;
                assert!(account["firstLoginAt"].is_string(), "{account}");
            }
        }
    };
}

// Names: binding, assertion, the IdP's signing key, census-login's encryption key.
node_stores!(
    post_binding_plain_assertion_rsa_logs_in,
    "rsa",
    "post",
    false,
    "sp-enc"
);
node_stores!(
    post_binding_ecdh_es_encrypted_assertion_ec_logs_in,
    "ec",
    "post",
    true,
    "sp-enc"
);
node_stores!(
    artifact_binding_plain_assertion_ec_logs_in,
    "ec",
    "artifact",
    false,
    "sp-enc"
);
node_stores!(
    artifact_binding_ecdh_es_encrypted_assertion_ec_logs_in,
    "ec",
    "artifact",
    true,
    "sp-enc"
);
node_stores!(
    artifact_binding_rsa_oaep_encrypted_assertion_rsa_logs_in,
    "rsa",
    "artifact",
    true,
    "sp-enc-rsa"
);

#[tokio::test]
async fn a_redis_cluster_serves_node_logins() {
    let (app, idp) = node_app(Backend::Cluster, "ec").await;
    idp.control(json!({"binding": "artifact", "encrypt": true}))
        .await;
    let b = browser();
    let r = node_login(&app, &b).await;
    assert_logged_in(&app, &b, r).await;
}

#[tokio::test]
async fn only_one_signature_is_enough_but_none_is_not() {
    let (app, idp) = node_app(Backend::Memory, "ec").await;
    for (sign_response, sign_assertion, encrypt) in [
        (true, false, false),
        (false, true, false),
        (false, true, true),
        (true, false, true),
    ] {
        idp.control(json!({"sign_response": sign_response, "sign_assertion": sign_assertion, "encrypt": encrypt}))
            .await;
        let b = browser();
        let r = node_login(&app, &b).await;
        assert_logged_in(&app, &b, r).await;
    }
    refused_with(
        &app,
        &idp,
        json!({"sign_response": false, "sign_assertion": false}),
        403,
        "unsigned",
    )
    .await;
    refused_with(&app, &idp, json!({"attack": "unsigned"}), 403, "unsigned").await;
    refused_with(
        &app,
        &idp,
        json!({"attack": "unsigned", "encrypt": true}),
        403,
        "unsigned",
    )
    .await;
}

#[tokio::test]
async fn tampered_and_wrapped_responses_are_refused_in_every_shape() {
    for enc in ["sp-enc", "sp-enc-rsa"] {
        tampered_and_wrapped_refused(enc).await;
    }
}

async fn tampered_and_wrapped_refused(enc: &'static str) {
    let (app, idp) = node_app_enc(Backend::Memory, "rsa", enc).await;
    for binding in ["post", "artifact"] {
        for encrypt in [false, true] {
            for (sr, sa) in [(true, true), (true, false), (false, true)] {
                let base = json!({"binding": binding, "encrypt": encrypt, "sign_response": sr, "sign_assertion": sa});
                let with = |attack: &str| {
                    let mut c = base.clone();
                    c["attack"] = json!(attack);
                    c
                };
                let what =
                    format!("{enc} {binding} encrypt={encrypt} response={sr} assertion={sa}");
                let mut b = browser();
                for (attack, reasons) in [
                    ("tamper", ["signature", "decryption"]),
                    ("xsw", ["wrapping", "signature"]),
                ] {
                    idp.control(with(attack)).await;
                    b = browser();
                    let r = node_login(&app, &b).await;
                    let status = r.status();
                    let page = r.text().await.unwrap();
                    assert_eq!(status, 403, "{attack} {what}: {page}");
                    assert!(
                        reasons
                            .iter()
                            .any(|x| page.contains(&format!("data-reason=\"{x}\""))),
                        "{attack} {what}: {page}"
                    );
                }
                assert_eq!(session(&app, &b).await.status(), 401);
            }
        }
    }
    // The evil person never got in.
    let evil = app.account("10210532057").await;
    assert!(evil["firstLoginAt"].is_null(), "{evil}");
    // Negative control: the same IdP, untouched, logs in.
    idp.control(json!({})).await;
    let b = browser();
    let r = node_login(&app, &b).await;
    assert_logged_in(&app, &b, r).await;
}

#[tokio::test]
async fn expired_wrong_audience_recipient_and_in_response_to_are_refused() {
    let (app, idp) = node_app(Backend::Memory, "ec").await;
    for binding in ["post", "artifact"] {
        for (attack, reason) in [
            ("expired", "expired"),
            ("wrong_audience", "audience"),
            ("wrong_recipient", "recipient"),
            ("wrong_in_response_to", "unknown_request"),
        ] {
            let control = json!({"binding": binding, "attack": attack});
            refused_with(&app, &idp, control, 403, reason).await;
        }
    }
    // Encrypted: the same checks on the decrypted assertion.
    refused_with(
        &app,
        &idp,
        json!({"encrypt": true, "attack": "wrong_audience"}),
        403,
        "audience",
    )
    .await;
    // No PESEL in the logs of any refusal.
    assert!(log_lines(&[&person(0).pesel]).is_empty());
}

#[tokio::test]
async fn a_response_is_single_use_and_needs_the_browser_that_asked() {
    let (app, idp) = node_app(Backend::Memory, "rsa").await;
    let b = browser();
    let d = start_login(&app, &b).await;
    // Another browser, with a login of its own under way (its own
    // census_saml cookie), bringing this response: refused, and the
    // request is spent.
    let other = browser();
    let _ = start_login(&app, &other).await;
    let r = deliver(&app, &other, &d).await;
    assert_refused(&app, &other, r, 403, "browser_mismatch").await;
    // The rightful browser with the same response now: a replay.
    let r = deliver(&app, &b, &d).await;
    assert_refused(&app, &b, r, 403, "replay").await;
    // A fresh login works, once.
    let d = start_login(&app, &b).await;
    let r = deliver(&app, &b, &d).await;
    assert_logged_in(&app, &b, r).await;
    let again = browser();
    let r = deliver(&app, &again, &d).await;
    assert_refused(&app, &again, r, 403, "replay").await;
    let _ = idp;
}

/// Over HTTPS (`session.cookie_secure`, production) the binding cookie is
/// `SameSite=None; Secure` so that the node's cross-site POST carries it, and
/// a response without it is refused. (Plain-HTTP development cannot carry a
/// cookie on a cross-site POST: there only a wrong cookie is refused.)
#[tokio::test]
async fn in_production_the_browser_binding_cookie_is_required() {
    let mut idp = Idp::keys();
    let mut overrides = idp.overrides("rsa");
    overrides.push(("session.cookie_secure", json!(true)));
    let app = spawn_app(Backend::Memory, &overrides).await;
    idp.serve(&app, "rsa");
    // No cookie store: Secure cookies would not go over http; the test sends
    // the cookie itself.
    let plain = cookieless();
    let login = |plain: Client| {
        let url = format!("{}/saml/login", app.address);
        async move {
            let r = plain.get(url).send().await.unwrap();
            assert_eq!(r.status(), 303);
            let cookie = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|c| c.starts_with("census_saml="))
                .expect("census_saml cookie")
                .to_owned();
            let page = plain.get(location(&r)).send().await.unwrap();
            assert_eq!(page.status(), 200);
            let page = page.text().await.unwrap();
            (
                cookie,
                hidden(&page, "SAMLResponse").unwrap(),
                hidden(&page, "RelayState").unwrap(),
            )
        }
    };
    let (cookie, response, relay) = login(plain.clone()).await;
    for attr in ["HttpOnly", "Secure", "SameSite=None", "Path=/saml/acs"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    let form = [
        ("SAMLResponse", response.as_str()),
        ("RelayState", relay.as_str()),
    ];
    let r = post_form(&plain, format!("{}/saml/acs", app.address), &form)
        .send()
        .await
        .unwrap();
    assert_refused(&app, &plain, r, 403, "browser_mismatch").await;
    // Negative control: with the cookie, the next login goes through.
    let (cookie, response, relay) = login(plain.clone()).await;
    let value = cookie.split(';').next().unwrap();
    let form = [
        ("SAMLResponse", response.as_str()),
        ("RelayState", relay.as_str()),
    ];
    let r = post_form(&plain, format!("{}/saml/acs", app.address), &form)
        .header("cookie", value)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(sets_session(&r));
}

#[tokio::test]
async fn a_response_for_a_request_never_sent_is_refused() {
    let (app, idp) = node_app(Backend::Memory, "rsa").await;
    // The IdP answers a request of another service provider instance (a
    // second app with the same keys, another store): this one never sent it.
    let other = spawn_app(Backend::Memory, &idp.overrides("rsa")).await;
    let b = browser();
    let d = start_login(&other, &b).await;
    let r = deliver(&app, &b, &d).await;
    assert_refused(&app, &b, r, 403, "unknown_request").await;
}

/// The node's artifact resolution service over TLS that demands a client
/// certificate: resolved with the configured CA and client certificate; a
/// missing client certificate or an untrusted server certificate fails the
/// back channel (502 `unavailable`), and nobody gets in.
#[tokio::test]
async fn the_artifact_back_channel_does_mutual_tls() {
    let mut idp = Idp::keys();
    let p = |n: &str| json!(idp.path(n).display().to_string());
    let ca = ("national_node.artifact_ca_file", p("tls-ca.crt"));
    let client = [
        (
            "national_node.artifact_client_certificate_file",
            p("sp-tls.crt"),
        ),
        (
            "secrets.saml_artifact_client_key",
            json!(idp.read("sp-tls.key")),
        ),
    ];
    let with = |extra: &[(&'static str, Value)]| {
        let mut o = idp.overrides("ec-tls");
        o.extend(extra.iter().cloned());
        o
    };
    let full = with(&[ca.clone(), client[0].clone(), client[1].clone()]);
    let full = spawn_app(Backend::Memory, &full).await;
    let no_client_cert = spawn_app(Backend::Memory, &with(&[ca])).await;
    let untrusted_server = spawn_app(Backend::Memory, &with(&client)).await;
    idp.serve(&full, "ec");
    idp.control(json!({"binding": "artifact", "encrypt": true}))
        .await;
    for (app, what) in [
        (&no_client_cert, "no client certificate"),
        (&untrusted_server, "the IdP's CA not trusted"),
    ] {
        let b = browser();
        let r = node_login(app, &b).await;
        assert_eq!(r.status(), 502, "{what}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains("data-reason=\"unavailable\""),
            "{what}: {page}"
        );
        assert_eq!(session(app, &b).await.status(), 401, "{what}");
    }
    let b = browser();
    let r = node_login(&full, &b).await;
    assert_logged_in(&full, &b, r).await;
}

/// The node rotates its signing key: its metadata file changes under a
/// running service, which reads it again within seconds, no restart. A file
/// that turns invalid meanwhile keeps the last good metadata in use.
#[tokio::test]
async fn a_changed_node_metadata_file_is_read_again_without_a_restart() {
    let mut idp = Idp::keys();
    let md = idp.path("node-metadata.xml");
    let tmp = idp.path("node-metadata.xml.new");
    // Replaced as a Kubernetes ConfigMap update does it: a new file renamed in.
    let replace = |text: &str| {
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &md).unwrap();
    };
    let (rsa_md, ec_md) = (
        idp.read("idp-metadata-rsa.xml"),
        idp.read("idp-metadata-ec.xml"),
    );
    replace(&rsa_md);
    let mut overrides = idp.overrides("rsa");
    overrides.push((
        "national_node.idp_metadata_file",
        json!(md.display().to_string()),
    ));
    let app = spawn_app(Backend::Memory, &overrides).await;
    // The IdP signs with its EC key, which the metadata in use does not list.
    idp.serve(&app, "ec");
    refused_with(&app, &idp, json!({}), 403, "signature").await;
    replace("<md:EntityDescriptor broken");
    tokio::time::sleep(Duration::from_secs(6)).await;
    refused_with(&app, &idp, json!({}), 403, "signature").await;
    // The new key published: node logins verify again within the check period.
    replace(&ec_md);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let b = browser();
        let r = node_login(&app, &b).await;
        if r.status() == 303 {
            assert_logged_in(&app, &b, r).await;
            break;
        }
        assert_eq!(r.status(), 403, "only the old signature refusal meanwhile");
        assert!(
            std::time::Instant::now() < deadline,
            "the changed metadata was not read again within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn start_up_refuses_a_client_certificate_of_another_key() {
    let idp = Idp::keys();
    let mut overrides = idp.overrides("ec-tls");
    overrides.push((
        "national_node.artifact_client_certificate_file",
        json!(idp.path("sp-tls.crt").display().to_string()),
    ));
    overrides.push((
        "secrets.saml_artifact_client_key",
        json!(idp.read("sp-sign.key")),
    ));
    let s = settings(Backend::Memory, None, &overrides);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(census_login::startup::Application::build(s))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_on_a_second_replica_is_refused() {
    let redis = RedisServer::start();
    let mut idp = Idp::keys();
    let overrides = idp.overrides("ec");
    let a = spawn_with(settings(Backend::Redis, Some(&redis.url()), &overrides)).await;
    let b_app = spawn_with(settings(Backend::Redis, Some(&redis.url()), &overrides)).await;
    idp.serve(&a, "ec");
    let b = browser();
    let d = start_login(&a, &b).await;
    // Replica B accepts the response to A's request (the store is shared)…
    let r = deliver(&b_app, &b, &d).await;
    assert_logged_in(&b_app, &b, r).await;
    // …and replica A refuses the same response afterwards.
    let r = deliver(&a, &b, &d).await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("data-reason=\"replay\""), "{page}");
    assert_eq!(
        a.metric_sum("census_saml_refused_total{reason=\"replay\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_loa_below_the_minimum_and_bad_pesels_are_refused() {
    let (app, idp) = node_app(Backend::Memory, "ec").await;
    refused_with(
        &app,
        &idp,
        json!({"loa": "http://eidas.europa.eu/LoA/low"}),
        403,
        "loa_too_low",
    )
    .await;
    refused_with(
        &app,
        &idp,
        json!({"loa": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"}),
        403,
        "loa_too_low",
    )
    .await;
    refused_with(&app, &idp, json!({"pesel": null}), 403, "pesel_missing").await;
    for bad in ["97071225309", "9707122530", "PESEL97071", "04051401458"] {
        refused_with(&app, &idp, json!({"pesel": bad}), 403, "pesel_invalid").await;
    }
    // Valid, but not in the census register.
    refused_with(
        &app,
        &idp,
        json!({"pesel": "02070803628"}),
        403,
        "not_in_registry",
    )
    .await;
    // Negative controls: high is above substantial; the eIDAS form of the
    // identifier is the same PESEL.
    idp.control(json!({"loa": "http://eidas.europa.eu/LoA/high", "pesel": format!("PL/PL/{}", person(0).pesel)}))
        .await;
    let b = browser();
    let r = node_login(&app, &b).await;
    assert_logged_in(&app, &b, r).await;
}

#[tokio::test]
async fn a_node_login_opens_the_window_without_touching_the_lockout() {
    let (app, idp) = node_app(Backend::Redis, "rsa").await;
    let p = person(0);
    // Five failures lock the PESEL…
    for _ in 0..5 {
        app.login(&p.pesel, "Wrong1234").await;
    }
    let before = app.account(&p.pesel).await;
    assert!(before["lockout"]["lockedUntil"].is_string(), "{before}");
    // …and the node login works regardless, leaving the lock as it was.
    let b = browser();
    let r = node_login(&app, &b).await;
    let s = assert_logged_in(&app, &b, r).await;
    let after = app.account(&p.pesel).await;
    assert_eq!(after["lockout"], before["lockout"]);
    assert_eq!(after["firstLoginAt"], s["firstLoginAt"]);
    let _ = idp;
}

/// Reclaim (RULES.md): an impostor defined the password; the person logs in
/// through the node and reclaims the account.
#[tokio::test]
async fn reclaim_replaces_the_password_and_ends_the_impostors_sessions() {
    for backend in [Backend::Memory, Backend::Redis, Backend::Cluster] {
        let (app, idp) = node_app(backend, "ec").await;
        let p = person(0);
        // The impostor: password defined, logged in, and a few failures.
        let impostor = app.define(&p, GOOD_PASSWORD).await;
        assert_eq!(impostor.status(), 201);
        app.login(&p.pesel, "Wrong1234").await;
        assert_eq!(app.session().await.status(), 200);

        let b = browser();
        let r = node_login(&app, &b).await;
        let s = assert_logged_in(&app, &b, r).await;
        assert_eq!(s["passwordDefined"], true, "{backend:?}");

        let reclaim = |body: Value| {
            b.post(format!("{}/api/v1/account/reclaim", app.address))
                .json(&body)
                .send()
        };
        // Same policy as a definition.
        let r = reclaim(json!({"password": "short", "passwordRepeat": "short"}))
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let r = reclaim(json!({"password": "Odzysk2021Ok", "passwordRepeat": "Odzysk2021Ok"}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{backend:?}: {}", r.text().await.unwrap());
        // The impostor's session is gone, the old password no longer works,
        // the new one does, and the reclaimer stays logged in.
        assert_eq!(app.session().await.status(), 401, "{backend:?}");
        assert_eq!(app.login(&p.pesel, GOOD_PASSWORD).await.status(), 401);
        assert_eq!(session(&app, &b).await.status(), 200);
        let account = app.account(&p.pesel).await;
        assert_eq!(account["lockout"]["failures"], 1, "the failed old password");
        assert_eq!(app.login(&p.pesel, "Odzysk2021Ok").await.status(), 200);
        let audit = log_lines(&["account_reclaimed", &crate::helpers::cid(&p.pesel)]);
        assert!(!audit.is_empty(), "no audit line");
        assert_eq!(audit[0]["audit"], true);
        let _ = idp;
    }
}

#[tokio::test]
async fn reclaim_clears_failures_and_locks() {
    let (app, _idp) = node_app(Backend::Memory, "rsa").await;
    let p = person(0);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 201);
    for _ in 0..5 {
        app.login(&p.pesel, "Wrong1234").await;
    }
    assert!(app.account(&p.pesel).await["lockout"]["lockedUntil"].is_string());
    let b = browser();
    let r = node_login(&app, &b).await;
    assert_logged_in(&app, &b, r).await;
    let r = b
        .post(format!("{}/api/v1/account/reclaim", app.address))
        .json(&json!({"password": "Odzysk2021Ok", "passwordRepeat": "Odzysk2021Ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let account = app.account(&p.pesel).await;
    assert_eq!(account["lockout"]["failures"], 0, "{account}");
    assert!(account["lockout"]["lockedUntil"].is_null(), "{account}");
    assert_eq!(app.login(&p.pesel, "Odzysk2021Ok").await.status(), 200);
}

#[tokio::test]
async fn reclaim_needs_a_node_session_of_the_last_five_minutes() {
    let mut idp = Idp::keys();
    let (app, clock) = spawn_app_with_clock(Backend::Memory, &idp.overrides("rsa")).await;
    idp.serve(&app, "rsa");
    let body = json!({"password": "Odzysk2021Ok", "passwordRepeat": "Odzysk2021Ok"});
    // No session: 401.
    let r = browser()
        .post(format!("{}/api/v1/account/reclaim", app.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    crate::helpers::problem(r, 401, "not_authenticated").await;
    // A password session: 403.
    let p = person(1);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 201);
    let r = app.post_json("/api/v1/account/reclaim", &body).await;
    crate::helpers::problem(r, 403, "reclaim_not_allowed").await;
    // A node session older than 5 minutes: 403, and nothing changed.
    let b = browser();
    let r = node_login(&app, &b).await;
    assert_logged_in(&app, &b, r).await;
    clock.advance(Duration::from_secs(5 * 60 + 1));
    let r = b
        .post(format!("{}/api/v1/account/reclaim", app.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    crate::helpers::problem(r, 403, "reclaim_not_allowed").await;
    assert_eq!(app.session().await.status(), 200, "the other session stays");
}

/// Never refused as reserved: a reserved PESEL reclaims through the node.
#[tokio::test]
async fn a_reserved_pesel_logs_in_and_reclaims_through_the_node() {
    let (app, idp) = node_app(Backend::Memory, "rsa").await;
    let p = crate::helpers::reserved_person();
    idp.control(json!({"pesel": p.pesel})).await;
    let b = browser();
    let r = node_login(&app, &b).await;
    assert_logged_in(&app, &b, r).await;
    let r = b
        .post(format!("{}/api/v1/account/reclaim", app.address))
        .json(&json!({"password": "Odzysk2021Ok", "passwordRepeat": "Odzysk2021Ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.login(&p.pesel, "Odzysk2021Ok").await.status(), 200);
}

#[tokio::test]
async fn an_oversized_acs_post_is_refused() {
    let (app, _idp) = node_app(Backend::Memory, "rsa").await;
    let big = "A".repeat(300 * 1024);
    let r = post_form(
        &browser(),
        format!("{}/saml/acs", app.address),
        &[("SAMLResponse", big.as_str())],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 413);
    let r = post_form(
        &browser(),
        format!("{}/saml/acs", app.address),
        &[("SAMLResponse", "bm90IHhtbA==")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
}

/// The configuration refuses what would weaken verification.
#[test]
fn start_up_refuses_an_idp_without_a_signing_certificate() {
    let idp = Idp::keys();
    let md = std::fs::read_to_string(idp.path("idp-metadata-rsa.xml")).unwrap();
    let start = md.find("<md:KeyDescriptor").expect("a KeyDescriptor");
    let end = md.find("</md:KeyDescriptor>").unwrap() + "</md:KeyDescriptor>".len();
    let stripped = format!("{}{}", &md[..start], &md[end..]);
    let path = idp.path("no-cert.xml");
    std::fs::write(&path, stripped).unwrap();
    let mut overrides = idp.overrides("rsa");
    overrides.push((
        "national_node.idp_metadata_file",
        json!(path.display().to_string()),
    ));
    let s = settings(Backend::Memory, None, &overrides);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(census_login::startup::Application::build(s))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("no signing certificate"), "{err}");
    let _ = Path::new(ROOT);
}

/// The hand-off to the census form: the ID token of a node session says how
/// the person authenticated.
#[tokio::test]
async fn the_id_token_of_a_node_session_carries_the_login_gov_pl_acr() {
    let mut idp = Idp::keys();
    let overrides = crate::oidc::oidc_overrides(&idp.overrides("ec"));
    let app = spawn_app(Backend::Memory, &overrides).await;
    idp.serve(&app, "ec");
    let b = browser();
    let r = node_login(&app, &b).await;
    assert_logged_in(&app, &b, r).await;
    let rp = crate::oidc::Rp::new();
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(rp.params(&[]))
        .finish();
    let r = b
        .get(format!("{}/oidc/authorize?{query}", app.address))
        .send()
        .await
        .unwrap();
    let to = crate::oidc::location(&r);
    let rest = to
        .strip_prefix(&format!("{}?", crate::oidc::REDIRECT))
        .unwrap_or_else(|| panic!("to the client: {to}"));
    let code = form_urlencoded::parse(rest.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let r = app.redeem(&code, &rp).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let payload = tokens["id_token"]
        .as_str()
        .and_then(|t| t.split('.').nth(1))
        .expect("a JWT");
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["acr"], NODE_ACR, "{claims}");
}
