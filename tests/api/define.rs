//! "ZDEFINIUJ HASŁO": password definition in the order of RULES.md.

use crate::both_stores;
use crate::helpers::*;
use serde_json::{Value, json};

both_stores!(
    defining_a_password_logs_the_person_in,
    every_violation_is_listed_at_once,
    unknown_pesel_and_wrong_name_look_the_same,
    the_maiden_name_is_compared_tolerantly,
    a_second_definition_conflicts_only_after_identity,
    a_conflict_neither_counts_nor_clears_failures,
    a_reserved_pesel_is_refused_unless_configured,
    failed_identity_checks_lock_the_pesel,
    the_census_period_bounds_definition_and_login,
);

async fn defining_a_password_logs_the_person_in(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = person(0);
    let r = app.define(&p, GOOD_PASSWORD).await;
    assert_eq!(r.status(), 201);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("census_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    let body: Value = r.json().await.unwrap();
    let first = time::OffsetDateTime::parse(
        body["firstLoginAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ends = time::OffsetDateTime::parse(
        body["windowEndsAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(ends - first, time::Duration::days(14));
    assert!(body["expiresAt"].is_string());
    let account = app.account(&p.pesel).await;
    assert_eq!(account["passwordDefined"], true);
    assert_eq!(account["firstLoginAt"], body["firstLoginAt"]);
    // The password now works for login.
    assert_eq!(app.login(&p.pesel, GOOD_PASSWORD).await.status(), 200);
}

async fn every_violation_is_listed_at_once(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let r = app
        .post_json(
            "/api/v1/password",
            &json!({"pesel": "04051401458", "motherMaidenName": "K0walska", "password": "zażółć", "passwordRepeat": "other"}),
        )
        .await;
    let body = problem(r, 422, "validation_failed").await;
    let got: Vec<(String, String)> = body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["field"].as_str().unwrap().into(),
                v["code"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("pesel", "pesel_checksum"),
        ("motherMaidenName", "mother_maiden_name_invalid"),
        ("password", "password_too_short"),
        ("password", "password_no_uppercase"),
        ("password", "password_no_digit"),
        ("password", "password_invalid_characters"),
        ("passwordRepeat", "password_mismatch"),
    ];
    assert_eq!(
        got,
        want.map(|(f, c)| (f.to_owned(), c.to_owned())).to_vec()
    );
    let p = person(1);
    let r = app.define(&p, "Password1").await;
    let body = problem(r, 422, "validation_failed").await;
    assert_eq!(body["violations"][0]["code"], "password_too_common");
    let r = app.define(&p, &format!("X{}", p.pesel)).await;
    let body = problem(r, 422, "validation_failed").await;
    assert_eq!(body["violations"][0]["code"], "password_contains_pesel");
    // Validation changes nothing: no failure counted.
    assert_eq!(app.account(&p.pesel).await["lockout"]["failures"], 0);
}

async fn unknown_pesel_and_wrong_name_look_the_same(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = person(2);
    let wrong_name = Person {
        maiden_name: "Zupełnieinna".into(),
        ..p.clone()
    };
    let unknown = Person {
        pesel: UNKNOWN_PESEL.into(),
        ..p.clone()
    };
    let a = problem(
        app.define(&wrong_name, GOOD_PASSWORD).await,
        401,
        "identity_not_verified",
    )
    .await;
    let b2 = problem(
        app.define(&unknown, GOOD_PASSWORD).await,
        401,
        "identity_not_verified",
    )
    .await;
    assert_eq!(a, b2);
    // Both count for the lockout.
    assert_eq!(app.account(&p.pesel).await["lockout"]["failures"], 1);
    assert_eq!(app.account(UNKNOWN_PESEL).await["lockout"]["failures"], 1);
    assert_eq!(app.account(UNKNOWN_PESEL).await["registered"], false);
}

async fn the_maiden_name_is_compared_tolerantly(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = demo_people()
        .into_iter()
        .find(|p| {
            !p.reserved
                && p.maiden_name
                    .chars()
                    .any(|c| "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ".contains(c))
        })
        .expect("a demo person with a diacritic");
    let folded: String = p
        .maiden_name
        .to_uppercase()
        .chars()
        .map(|c| match c {
            'Ą' => 'A',
            'Ć' => 'C',
            'Ę' => 'E',
            'Ł' => 'L',
            'Ń' => 'N',
            'Ó' => 'O',
            'Ś' => 'S',
            'Ź' | 'Ż' => 'Z',
            c => c,
        })
        .collect();
    let typed = Person {
        maiden_name: format!("  {folded} "),
        ..p.clone()
    };
    assert_eq!(
        app.define(&typed, GOOD_PASSWORD).await.status(),
        201,
        "{} typed as {}",
        p.maiden_name,
        folded
    );
}

async fn a_second_definition_conflicts_only_after_identity(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = person(3);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 201);
    let again = app.define(&p, "Another2021").await;
    problem(again, 409, "password_already_defined").await;
    let wrong = Person {
        maiden_name: "Inna".into(),
        ..p.clone()
    };
    problem(
        app.define(&wrong, "Another2021").await,
        401,
        "identity_not_verified",
    )
    .await;
    // The first password still holds.
    assert_eq!(app.login(&p.pesel, GOOD_PASSWORD).await.status(), 200);
}

async fn a_conflict_neither_counts_nor_clears_failures(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = person(4);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 201);
    for _ in 0..3 {
        assert_eq!(app.login(&p.pesel, "Wrong2021x").await.status(), 401);
    }
    problem(
        app.define(&p, GOOD_PASSWORD).await,
        409,
        "password_already_defined",
    )
    .await;
    // Knowing the maiden name must not reset a stranger's failure count.
    assert_eq!(app.account(&p.pesel).await["lockout"]["failures"], 3);
}

async fn a_reserved_pesel_is_refused_unless_configured(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = reserved_person();
    let body = problem(app.define(&p, GOOD_PASSWORD).await, 403, "pesel_reserved").await;
    assert!(body["detail"].as_str().unwrap().contains("login.gov.pl"));
    assert_eq!(app.account(&p.pesel).await["lockout"]["failures"], 0);
    let lenient = spawn_app(b, &[("registry.refuse_reserved", json!(false))]).await;
    assert_eq!(lenient.define(&p, GOOD_PASSWORD).await.status(), 201);
}

async fn failed_identity_checks_lock_the_pesel(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let p = person(5);
    let wrong = Person {
        maiden_name: "Inna".into(),
        ..p.clone()
    };
    for _ in 0..4 {
        problem(
            app.define(&wrong, GOOD_PASSWORD).await,
            401,
            "identity_not_verified",
        )
        .await;
    }
    let locked = app.define(&wrong, GOOD_PASSWORD).await;
    assert_eq!(locked.headers()["retry-after"], "3600");
    problem(locked, 423, "account_locked").await;
    // Even the right name is not checked while locked.
    problem(app.define(&p, GOOD_PASSWORD).await, 423, "account_locked").await;
}

async fn the_census_period_bounds_definition_and_login(b: Backend) {
    let not_yet = spawn_app(b, &[("census.opens_at", json!("2099-01-01T00:00:00Z"))]).await;
    let p = person(6);
    problem(
        not_yet.define(&p, GOOD_PASSWORD).await,
        403,
        "census_not_open",
    )
    .await;
    problem(
        not_yet.login(&p.pesel, GOOD_PASSWORD).await,
        403,
        "census_not_open",
    )
    .await;
    let over = spawn_app(b, &[("census.closes_at", json!("2021-09-30T23:59:59Z"))]).await;
    problem(over.define(&p, GOOD_PASSWORD).await, 403, "census_closed").await;
    problem(
        over.login(&p.pesel, GOOD_PASSWORD).await,
        403,
        "census_closed",
    )
    .await;
    let meta: Value = over.get("/api/v1/meta").await.json().await.unwrap();
    assert_eq!(meta["censusClosesAt"], "2021-09-30T23:59:59Z");
}
