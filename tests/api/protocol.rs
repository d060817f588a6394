//! The HTTP contract: meta, PESEL check, problem+json for bad input, headers.

use crate::both_stores;
use crate::helpers::*;
use serde_json::{Value, json};

both_stores!(
    meta_describes_policy_window_and_lockout,
    pesel_check_reports_structure_only,
    pesel_check_rejects_the_printed_examples_with_checksum,
    bodies_must_be_json_small_and_exact,
    every_response_carries_the_security_headers,
    details_are_polish_unless_english_is_preferred,
    foreign_origins_cannot_change_state,
    unknown_paths_are_problems_too,
    readiness_and_health_answer,
);

async fn meta_describes_policy_window_and_lockout(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let r = app.get("/api/v1/meta").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["passwordPolicy"]["minLength"], 8);
    assert_eq!(m["surveyWindowDays"], 14);
    assert_eq!(m["helpline"], "+48 22 279 99 99");
    assert_eq!(m["lockout"]["maxFailures"], 5);
    assert_eq!(m["lockout"]["baseBlockSeconds"], 3600);
    assert_eq!(m["maxFailures"], 5);
    assert!(m["censusOpensAt"].is_null() && m["censusClosesAt"].is_null());
}

async fn pesel_check_reports_structure_only(b: Backend) {
    let app = spawn_app(b, &[]).await;
    // Not in the registry: the check is structural only.
    let r = app
        .post_json("/api/v1/pesel/check", &json!({"pesel": UNKNOWN_PESEL}))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"valid": true, "birthDate": "1902-07-08", "sex": "female"})
    );
    let r = app
        .post_json("/api/v1/pesel/check", &json!({"pesel": "123"}))
        .await;
    let body = problem(r, 422, "validation_failed").await;
    assert_eq!(body["violations"][0]["field"], "pesel");
    assert_eq!(body["violations"][0]["code"], "pesel_format");
    assert!(body["violations"][0]["message"].is_string());
    // Month 13 with a correct check digit: a date error.
    let r = app
        .post_json("/api/v1/pesel/check", &json!({"pesel": "90130100011"}))
        .await;
    let body = problem(r, 422, "validation_failed").await;
    assert_eq!(body["violations"][0]["code"], "pesel_date");
}

async fn pesel_check_rejects_the_printed_examples_with_checksum(b: Backend) {
    let app = spawn_app(b, &[]).await;
    for pesel in ["04051401458", "11302845081"] {
        let r = app
            .post_json("/api/v1/pesel/check", &json!({"pesel": pesel}))
            .await;
        let body = problem(r, 422, "validation_failed").await;
        assert_eq!(body["violations"][0]["code"], "pesel_checksum");
    }
}

async fn bodies_must_be_json_small_and_exact(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let url = format!("{}/api/v1/login", app.address);
    let r = app
        .client
        .post(&url)
        .body(r#"{"pesel":"1","password":"x"}"#)
        .send()
        .await
        .unwrap();
    problem(r, 415, "unsupported_media_type").await;
    let r = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(r, 400, "malformed_request").await;
    let r = app
        .post_json("/api/v1/login", &json!({"pesel": UNKNOWN_PESEL}))
        .await;
    problem(r, 400, "malformed_request").await;
    let r = app
        .post_json(
            "/api/v1/login",
            &json!({"pesel": 2070803628u64, "password": "x"}),
        )
        .await;
    problem(r, 400, "malformed_request").await;
    let r = app
        .post_json(
            "/api/v1/login",
            &json!({"pesel": UNKNOWN_PESEL, "password": "x", "admin": true}),
        )
        .await;
    problem(r, 400, "malformed_request").await;
    // The fields as an array, which serde's derived structs take (tests/fuzz).
    let r = app
        .post_json("/api/v1/login", &json!([UNKNOWN_PESEL, "Wrong2021x"]))
        .await;
    problem(r, 400, "malformed_request").await;
    let big = "x".repeat(17 * 1024);
    let r = app
        .post_json(
            "/api/v1/login",
            &json!({"pesel": UNKNOWN_PESEL, "password": big}),
        )
        .await;
    problem(r, 413, "payload_too_large").await;
    // None of that counted as a login attempt.
    let account = app.account(UNKNOWN_PESEL).await;
    assert_eq!(account["lockout"]["failures"], 0);
}

async fn every_response_carries_the_security_headers(b: Backend) {
    let app = spawn_app(b, &[]).await;
    for path in ["/", "/api/v1/meta", "/api/v1/session", "/nope"] {
        let r = app.get(path).await;
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(
            h.contains_key("strict-transport-security"),
            "{path}: cookies are secure by default"
        );
        if path.starts_with("/api") {
            assert_eq!(h["cache-control"], "no-store", "{path}");
        }
    }
    let plain = spawn_app(b, &[("session.cookie_secure", json!(false))]).await;
    let r = plain.get("/api/v1/meta").await;
    assert!(!r.headers().contains_key("strict-transport-security"));
}

async fn details_are_polish_unless_english_is_preferred(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let ask = |lang: &'static str| {
        app.client
            .post(format!("{}/api/v1/login", app.address))
            .header("accept-language", lang)
            .json(&json!({"pesel": UNKNOWN_PESEL, "password": "Whatever1"}))
            .send()
    };
    let pl = problem(
        ask("pl-PL,pl;q=0.9").await.unwrap(),
        401,
        "invalid_credentials",
    )
    .await;
    let en = problem(
        ask("en-US,en;q=0.9").await.unwrap(),
        401,
        "invalid_credentials",
    )
    .await;
    assert!(pl["detail"].as_str().unwrap().contains("hasło"), "{pl}");
    assert!(en["detail"].as_str().unwrap().contains("password"), "{en}");
}

async fn foreign_origins_cannot_change_state(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = person(0);
    let body = json!({"pesel": p.pesel, "motherMaidenName": p.maiden_name, "password": GOOD_PASSWORD, "passwordRepeat": GOOD_PASSWORD});
    let r = app
        .client
        .post(format!("{}/api/v1/password", app.address))
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(r, 403, "origin_not_allowed").await;
    assert_eq!(app.account(&p.pesel).await["passwordDefined"], false);
    let r = app
        .client
        .post(format!("{}/api/v1/password", app.address))
        .header("origin", "http://census.test")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn unknown_paths_are_problems_too(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let r = app.get("/api/v1/nothing").await;
    problem(r, 404, "not_found").await;
    let r = app.get("/api/v1/login").await;
    problem(r, 405, "method_not_allowed").await;
}

async fn readiness_and_health_answer(b: Backend) {
    let app = spawn_app(b, &[]).await;
    for path in ["/healthz", "/readyz"] {
        let r = app
            .client
            .get(format!("{}{path}", app.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("lang=\"pl\""));
    // HEAD (uptime monitors): the GET answer's status and headers, no body.
    for url in [
        format!("{}/", app.address),
        format!("{}/assets/app.js", app.address),
        format!("{}/healthz", app.admin),
        format!("{}/readyz", app.admin),
    ] {
        let r = app.client.head(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "HEAD {url}");
        assert!(r.headers().contains_key("content-type"), "HEAD {url}");
        assert!(r.bytes().await.unwrap().is_empty(), "HEAD {url}");
    }
}
