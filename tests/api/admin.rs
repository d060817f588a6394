//! The helpline's admin API and the no-PESEL requests it lists.

use crate::both_stores;
use crate::helpers::*;
use serde_json::{Value, json};

both_stores!(
    the_admin_api_needs_the_bearer_token,
    account_status_shows_registry_password_window_and_lock,
    unlock_lifts_a_lock,
    reset_lets_the_rightful_person_define_again,
    no_pesel_requests_are_stored_and_listed,
);

/// A tokens file line for `name` with `token`.
fn token_line(name: &str, token: &str) -> String {
    format!(
        "{name}:{}\n",
        census_login::admin_tokens::token_digest_hex(token)
    )
}

async fn post_as(app: &TestApp, token: &str, path: &str) -> u16 {
    app.client
        .post(format!("{}{path}", app.admin))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The one audit line of `event` for this PESEL, and its actor.
fn actor_of(event: &str, pesel: &str) -> String {
    let lines = log_lines(&[&format!("\"event\":\"{event}\""), &cid(pesel)]);
    assert_eq!(lines.len(), 1, "{event}: {lines:?}");
    assert_eq!(lines[0]["audit"], true);
    lines[0]["actor"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operator_has_a_token_and_is_logged_as_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-tokens");
    let tokens = format!(
        "# the helpline\n{}{}",
        token_line("alice", "alice-secret-token"),
        token_line("bob", "bob-secret-token")
    );
    std::fs::write(&file, tokens).unwrap();
    let app = spawn_app(
        Backend::Memory,
        &[(
            "secrets.admin_tokens_file",
            json!(file.display().to_string()),
        )],
    )
    .await;
    let (p1, p2, p3, p4) = (person(61), person(62), person(63), person(64));
    for p in [&p1, &p2, &p3, &p4] {
        assert_eq!(app.define(p, GOOD_PASSWORD).await.status(), 201);
    }
    let path = |p: &Person, what: &str| format!("/admin/v1/accounts/{}/{what}", p.pesel);
    assert_eq!(
        post_as(&app, "alice-secret-token", &path(&p1, "unlock")).await,
        204
    );
    assert_eq!(
        post_as(&app, "bob-secret-token", &path(&p2, "reset")).await,
        204
    );
    // The shared token still works, as `admin-token`.
    assert_eq!(post_as(&app, ADMIN_TOKEN, &path(&p3, "reset")).await, 204);
    // A digest is not a token.
    let digest = census_login::admin_tokens::token_digest_hex("alice-secret-token");
    assert_eq!(post_as(&app, &digest, &path(&p4, "reset")).await, 401);
    let looked = app
        .client
        .get(format!("{}/admin/v1/accounts/{}", app.admin, p4.pesel))
        .bearer_auth("bob-secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(looked.status(), 200);

    assert_eq!(actor_of("admin_unlock", &p1.pesel), "alice");
    assert_eq!(actor_of("admin_reset", &p2.pesel), "bob");
    assert_eq!(actor_of("admin_reset", &p3.pesel), "admin-token");
    assert_eq!(actor_of("admin_account_view", &p4.pesel), "bob");
    assert!(log_lines(&["\"event\":\"admin_reset\"", &cid(&p4.pesel)]).is_empty());

    // The no-PESEL actions too.
    let r = app
        .post_json(
            "/api/v1/no-pesel-requests",
            &json!({"fullName": "Jan Kowalski", "email": "jan@example.pl"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let reference = r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let handled = format!("/admin/v1/no-pesel-requests/{reference}/handled");
    assert_eq!(post_as(&app, "alice-secret-token", &handled).await, 204);
    let lines = log_lines(&["\"event\":\"admin_no_pesel_handled\"", &reference]);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["actor"], "alice");

    // Bob's line removed: within a reload his token stops working, Alice's does not.
    std::fs::write(&file, token_line("alice", "alice-secret-token")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = post_as(&app, "bob-secret-token", &path(&p2, "unlock")).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 204);
        assert!(
            std::time::Instant::now() < deadline,
            "bob's token still works"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        post_as(&app, "alice-secret-token", &path(&p1, "unlock")).await,
        204
    );

    // A malformed file after start fails closed for the file's tokens only.
    std::fs::write(&file, "alice:zz\n").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while post_as(&app, "alice-secret-token", &path(&p1, "unlock")).await != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "a malformed file kept tokens"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(post_as(&app, ADMIN_TOKEN, &path(&p1, "unlock")).await, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_tokens_file_is_refused_at_start_with_the_key_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-tokens");
    std::fs::write(&file, "alice:not-hex\n").unwrap();
    let mut f = census_login::config::Settings::figment(std::path::Path::new("config"), None);
    f = f.merge(("secrets.admin_tokens_file", file.display().to_string()));
    let err = census_login::config::Settings::from_figment(f)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("secrets.admin_tokens_file") && err.contains("line 1"),
        "{err}"
    );
}

async fn the_admin_api_needs_the_bearer_token(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let url = format!("{}/admin/v1/no-pesel-requests", app.admin);
    problem(
        app.client.get(&url).send().await.unwrap(),
        401,
        "not_authenticated",
    )
    .await;
    problem(
        app.client
            .get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap(),
        401,
        "not_authenticated",
    )
    .await;
    assert_eq!(
        app.client
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // No token configured: the admin API is off, health and metrics are not.
    let mut s = settings(b, app.store_url.as_deref(), &[]);
    s.secrets.admin_token = None;
    let off = spawn_with(s).await;
    let r = off
        .client
        .get(format!("{}/admin/v1/no-pesel-requests", off.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    problem(r, 503, "admin_disabled").await;
    assert_eq!(
        off.client
            .get(format!("{}/metrics", off.admin))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn account_status_shows_registry_password_window_and_lock(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = person(20);
    let fresh = app.account(&p.pesel).await;
    assert_eq!(
        fresh,
        json!({"registered": true, "passwordDefined": false, "reserved": false, "firstLoginAt": null,
               "windowEndsAt": null, "lockout": {"failures": 0, "lockedUntil": null, "level": 0}})
    );
    let session: Value = app.define(&p, GOOD_PASSWORD).await.json().await.unwrap();
    app.login(&p.pesel, "Wrong2021x").await;
    let after = app.account(&p.pesel).await;
    assert_eq!(after["passwordDefined"], true);
    assert_eq!(after["windowEndsAt"], session["windowEndsAt"]);
    assert_eq!(after["lockout"]["failures"], 1);
    assert_eq!(
        app.account(&reserved_person().pesel).await["reserved"],
        true
    );
    let r = app.admin_get("/admin/v1/accounts/123").await;
    problem(r, 422, "validation_failed").await;
}

async fn unlock_lifts_a_lock(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = person(21);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 201);
    for _ in 0..5 {
        app.login(&p.pesel, "Wrong2021x").await;
    }
    problem(
        app.login(&p.pesel, GOOD_PASSWORD).await,
        423,
        "account_locked",
    )
    .await;
    assert_eq!(
        app.admin_post(&format!("/admin/v1/accounts/{}/unlock", p.pesel))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.account(&p.pesel).await["lockout"],
        json!({"failures": 0, "lockedUntil": null, "level": 0})
    );
    assert_eq!(app.login(&p.pesel, GOOD_PASSWORD).await.status(), 200);
}

async fn reset_lets_the_rightful_person_define_again(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = person(22);
    // Someone who knows PESEL and maiden name defines the password first.
    let first: Value = app.define(&p, "Intruder2021").await.json().await.unwrap();
    assert_eq!(app.session().await.status(), 200);
    assert_eq!(
        app.admin_post(&format!("/admin/v1/accounts/{}/reset", p.pesel))
            .await
            .status(),
        204
    );
    // Their session is gone, the password too; the window stays.
    problem(app.session().await, 401, "not_authenticated").await;
    problem(
        app.login(&p.pesel, "Intruder2021").await,
        401,
        "invalid_credentials",
    )
    .await;
    let account = app.account(&p.pesel).await;
    assert_eq!(account["passwordDefined"], false);
    assert_eq!(account["firstLoginAt"], first["firstLoginAt"]);
    let again: Value = app.define(&p, GOOD_PASSWORD).await.json().await.unwrap();
    assert_eq!(again["windowEndsAt"], first["windowEndsAt"]);
}

async fn no_pesel_requests_are_stored_and_listed(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let r = app
        .post_json("/api/v1/no-pesel-requests", &json!({"fullName": "Jan Kowalski", "phone": "+48 600 100 200", "message": "Mieszkam za granicą"}))
        .await;
    assert_eq!(r.status(), 202);
    let reference = r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reference.starts_with("NSP-"));
    let r = app
        .post_json(
            "/api/v1/no-pesel-requests",
            &json!({"fullName": "Jan Kowalski"}),
        )
        .await;
    let body = problem(r, 422, "validation_failed").await;
    assert_eq!(body["violations"][0]["code"], "contact_required");
    let list: Value = app
        .admin_get("/admin/v1/no-pesel-requests")
        .await
        .json()
        .await
        .unwrap();
    let requests = list["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["reference"], reference.as_str());
    assert_eq!(requests[0]["fullName"], "Jan Kowalski");
    assert_eq!(requests[0]["phone"], "+48 600 100 200");
}
