//! Sessions: cookie, sliding idle timeout, logout.

use crate::both_stores;
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

both_stores!(
    a_session_is_checked_and_ended_by_logout,
    the_idle_timeout_slides_with_activity,
    forged_cookies_are_refused,
);

async fn a_session_is_checked_and_ended_by_logout(b: Backend) {
    let app = spawn_app(b, &[]).await;
    problem(app.session().await, 401, "not_authenticated").await;
    let p = person(10);
    let defined: Value = app.define(&p, GOOD_PASSWORD).await.json().await.unwrap();
    let r = app.session().await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["firstLoginAt"], defined["firstLoginAt"]);
    assert_eq!(body["windowEndsAt"], defined["windowEndsAt"]);
    let out = app.logout().await;
    assert_eq!(out.status(), 204);
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    problem(app.session().await, 401, "not_authenticated").await;
    problem(app.logout().await, 401, "not_authenticated").await;
}

async fn the_idle_timeout_slides_with_activity(b: Backend) {
    let (app, clock) = spawn_app_with_clock(b, &[("session.idle_timeout", json!("1500ms"))]).await;
    let p = person(11);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 201);
    for _ in 0..3 {
        clock.advance(Duration::from_millis(800));
        assert_eq!(
            app.session().await.status(),
            200,
            "activity keeps the session alive"
        );
    }
    clock.advance(Duration::from_millis(1700));
    problem(app.session().await, 401, "not_authenticated").await;
}

async fn forged_cookies_are_refused(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = person(12);
    let r = app.define(&p, GOOD_PASSWORD).await;
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let value = cookie.trim_start_matches("census_session=");
    let (key, _) = value.split_once('.').unwrap();
    for forged in [
        format!("{key}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        "garbage".to_owned(),
        format!("{key}.{}", "A".repeat(2000)),
    ] {
        let r = new_client()
            .get(format!("{}/api/v1/session", app.address))
            .header("cookie", format!("census_session={forged}"))
            .send()
            .await
            .unwrap();
        problem(r, 401, "not_authenticated").await;
    }
    let r = new_client()
        .get(format!("{}/api/v1/session", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
