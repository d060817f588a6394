//! "ZALOGUJ", the lockout and the survey window, with short durations from config.

use crate::both_stores;
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

both_stores!(
    wrong_password_unknown_pesel_and_no_password_look_the_same,
    the_fifth_failure_locks_and_locked_attempts_are_not_checked,
    a_lock_is_not_lengthened_by_attempts_during_it,
    each_failure_after_a_lock_doubles_the_block,
    success_clears_failures,
    an_old_failure_streak_is_forgotten,
    the_survey_window_closes_login,
    login_password_is_only_bounded,
);

async fn wrong_password_unknown_pesel_and_no_password_look_the_same(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let (with_pw, without_pw) = (person(0), person(1));
    assert_eq!(app.define(&with_pw, GOOD_PASSWORD).await.status(), 201);
    let a = problem(
        app.login(&with_pw.pesel, "Wrong2021x").await,
        401,
        "invalid_credentials",
    )
    .await;
    let b2 = problem(
        app.login(UNKNOWN_PESEL, "Wrong2021x").await,
        401,
        "invalid_credentials",
    )
    .await;
    let c = problem(
        app.login(&without_pw.pesel, "Wrong2021x").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(a, b2);
    assert_eq!(a, c);
    // All three did the same hashing work (the dummy hash) and count as failures.
    assert_eq!(app.hash_count().await, 4.0); // 1 definition + 3 verifications
    for pesel in [&with_pw.pesel, &without_pw.pesel, &UNKNOWN_PESEL.to_owned()] {
        assert_eq!(app.account(pesel).await["lockout"]["failures"], 1);
    }
}

async fn the_fifth_failure_locks_and_locked_attempts_are_not_checked(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = person(2);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 201);
    for _ in 0..4 {
        problem(
            app.login(&p.pesel, "Wrong2021x").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    let fifth = app.login(&p.pesel, "Wrong2021x").await;
    assert_eq!(fifth.headers()["retry-after"], "3600");
    let body = problem(fifth, 423, "account_locked").await;
    assert_eq!(body["retryAfterSeconds"], 3600);
    assert!(body["lockedUntil"].is_string());
    let hashes = app.hash_count().await;
    // The right password during the lock: refused, and no hashing work done.
    problem(
        app.login(&p.pesel, GOOD_PASSWORD).await,
        423,
        "account_locked",
    )
    .await;
    assert_eq!(app.hash_count().await, hashes);
    let account = app.account(&p.pesel).await;
    assert_eq!(account["lockout"]["level"], 1);
    assert_eq!(account["lockout"]["failures"], 5);
    assert_eq!(account["lockout"]["lockedUntil"], body["lockedUntil"]);
    let m = app.metrics().await;
    assert!(
        m.contains("census_locks_started_total{level=\"1\"} 1"),
        "{m}"
    );
    assert!(m.contains("census_auth_outcomes_total{flow=\"login\",result=\"locked\"} 2"));
}

async fn a_lock_is_not_lengthened_by_attempts_during_it(b: Backend) {
    let app = spawn_app(b, &[("lockout.base_block", json!("2s"))]).await;
    let p = person(3);
    for _ in 0..5 {
        app.login(&p.pesel, "Wrong2021x").await;
    }
    let until = app.account(&p.pesel).await["lockout"]["lockedUntil"].clone();
    assert!(until.is_string());
    for _ in 0..10 {
        problem(
            app.login(&p.pesel, "Wrong2021x").await,
            423,
            "account_locked",
        )
        .await;
    }
    assert_eq!(app.account(&p.pesel).await["lockout"]["lockedUntil"], until);
}

async fn each_failure_after_a_lock_doubles_the_block(b: Backend) {
    let (app, clock) = spawn_app_with_clock(
        b,
        &[
            ("lockout.base_block", json!("1s")),
            ("lockout.max_block", json!("3s")),
        ],
    )
    .await;
    let p = person(4);
    for _ in 0..4 {
        app.login(&p.pesel, "Wrong2021x").await;
    }
    let first = problem(
        app.login(&p.pesel, "Wrong2021x").await,
        423,
        "account_locked",
    )
    .await;
    assert_eq!(first["retryAfterSeconds"], 1);
    clock.advance(Duration::from_millis(1100));
    // One failure after the lock ends locks again at once, for twice as long.
    let second = problem(
        app.login(&p.pesel, "Wrong2021x").await,
        423,
        "account_locked",
    )
    .await;
    assert_eq!(second["retryAfterSeconds"], 2);
    assert_eq!(app.account(&p.pesel).await["lockout"]["level"], 2);
    clock.advance(Duration::from_millis(2100));
    // Capped at max_block (3 s) rather than 4 s.
    let third = problem(
        app.login(&p.pesel, "Wrong2021x").await,
        423,
        "account_locked",
    )
    .await;
    assert_eq!(third["retryAfterSeconds"], 3);
    let m = app.metrics().await;
    for level in 1..=3 {
        assert!(
            m.contains(&format!(
                "census_locks_started_total{{level=\"{level}\"}} 1"
            )),
            "{m}"
        );
    }
}

async fn success_clears_failures(b: Backend) {
    let (app, clock) = spawn_app_with_clock(b, &[("lockout.base_block", json!("1s"))]).await;
    let p = person(5);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 201);
    for _ in 0..5 {
        app.login(&p.pesel, "Wrong2021x").await;
    }
    clock.advance(Duration::from_millis(1100));
    assert_eq!(app.login(&p.pesel, GOOD_PASSWORD).await.status(), 200);
    let lockout = &app.account(&p.pesel).await["lockout"];
    assert_eq!(
        lockout,
        &json!({"failures": 0, "level": 0, "lockedUntil": null})
    );
    // A fresh streak: four failures are allowed again before the fifth locks.
    for _ in 0..4 {
        problem(
            app.login(&p.pesel, "Wrong2021x").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
}

async fn an_old_failure_streak_is_forgotten(b: Backend) {
    let (app, clock) = spawn_app_with_clock(
        b,
        &[
            ("lockout.base_block", json!("1s")),
            ("lockout.forget_after", json!("1s")),
        ],
    )
    .await;
    let p = person(6);
    for _ in 0..3 {
        app.login(&p.pesel, "Wrong2021x").await;
    }
    assert_eq!(app.account(&p.pesel).await["lockout"]["failures"], 3);
    clock.advance(Duration::from_millis(1100));
    assert_eq!(app.account(&p.pesel).await["lockout"]["failures"], 0);
    for _ in 0..4 {
        problem(
            app.login(&p.pesel, "Wrong2021x").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    // After a lock, the clock starts when the lock ends (1 s + 1 s).
    problem(
        app.login(&p.pesel, "Wrong2021x").await,
        423,
        "account_locked",
    )
    .await;
    clock.advance(Duration::from_millis(1500));
    assert_eq!(app.account(&p.pesel).await["lockout"]["level"], 1);
    clock.advance(Duration::from_millis(700));
    assert_eq!(app.account(&p.pesel).await["lockout"]["level"], 0);
}

async fn the_survey_window_closes_login(b: Backend) {
    let (app, clock) = spawn_app_with_clock(b, &[("survey.window", json!("2s"))]).await;
    let p = person(7);
    let r = app.define(&p, GOOD_PASSWORD).await;
    let body: Value = r.json().await.unwrap();
    // The session ends with the window, not after the 30 min idle timeout.
    assert_eq!(body["expiresAt"], body["windowEndsAt"]);
    assert_eq!(app.login(&p.pesel, GOOD_PASSWORD).await.status(), 200);
    clock.advance(Duration::from_millis(2100));
    problem(app.session().await, 401, "not_authenticated").await;
    let closed = problem(
        app.login(&p.pesel, GOOD_PASSWORD).await,
        403,
        "survey_window_closed",
    )
    .await;
    assert!(
        closed["detail"]
            .as_str()
            .unwrap()
            .contains("+48 22 279 99 99")
    );
    // Still the right password: no failure counted.
    assert_eq!(app.account(&p.pesel).await["lockout"]["failures"], 0);
    let m = app.metrics().await;
    assert!(
        m.contains("census_auth_outcomes_total{flow=\"login\",result=\"window_closed\"} 1"),
        "{m}"
    );
}

async fn login_password_is_only_bounded(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let body = problem(app.login(UNKNOWN_PESEL, "").await, 422, "validation_failed").await;
    assert_eq!(body["violations"][0]["code"], "password_required");
    let body = problem(
        app.login("1234", &"x".repeat(129)).await,
        422,
        "validation_failed",
    )
    .await;
    let codes: Vec<&str> = body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["pesel_format", "password_too_long"]);
}
