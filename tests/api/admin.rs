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
