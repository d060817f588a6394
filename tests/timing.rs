//! A login for an unknown PESEL, for a PESEL without a password and with a
//! wrong password must not be told apart (RULES.md, "Logging in"): not by
//! status, body or headers, nor by timing. 250 samples of each, interleaved in
//! a random order per round, medians within 10 %. A negative control shows
//! that the measurement does see a path that skips the hash. Its own test
//! binary, so that no other test runs beside it and skews the clock.

#[path = "support/mod.rs"]
mod support;

#[allow(dead_code)] // the API tests' harness; this test uses a part of it
#[path = "api/helpers.rs"]
mod helpers;

use helpers::*;
use rand::seq::SliceRandom;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ROUNDS: usize = 250;
const WARM_UP: usize = 20;

/// What a client sees of an answer: status, headers, body.
type Answer = (u16, BTreeMap<String, String>, Value);

/// Every header but those that differ per response by design.
fn comparable(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-request-id"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("<binary>").to_owned()))
        .collect()
}

fn median(xs: &mut [Duration]) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pesel_no_password_and_wrong_password_cannot_be_told_apart() {
    // Argon2 big enough to dominate a request (so that skipping it would show),
    // small enough for 750 verifications; equal for all three by construction.
    // No lock and no rate limit may end the series.
    let app = spawn_app(
        Backend::Memory,
        &[
            ("password.argon2_memory_kib", json!(4096)),
            ("password.argon2_iterations", json!(1)),
            ("lockout.max_failures", json!(1_000_000)),
            ("rate_limit.per_ip_per_minute", json!(1_000_000)),
            ("rate_limit.burst", json!(1_000_000)),
        ],
    )
    .await;
    let (with_pw, without_pw) = (person(0), person(1));
    assert_eq!(app.define(&with_pw, GOOD_PASSWORD).await.status(), 201);
    // A fresh client: no session cookie rides along.
    let client = new_client();
    let cases = [
        ("unknown PESEL", UNKNOWN_PESEL.to_owned(), "Wrong2021x"),
        ("no password", without_pw.pesel.clone(), "Wrong2021x"),
        ("wrong password", with_pw.pesel.clone(), "Wrong2021x"),
        // Negative control: a malformed PESEL is refused before any hashing.
        ("control: no hash", "0000000000".to_owned(), "Wrong2021x"),
    ];
    let url = format!("{}/api/v1/login", app.address);
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut first: Vec<Option<Answer>> = vec![None; cases.len()];
    let mut order: Vec<usize> = (0..cases.len()).collect();
    let mut rng = rand::rng();
    for round in 0..WARM_UP + ROUNDS {
        order.shuffle(&mut rng);
        for &c in &order {
            let (_, pesel, password) = &cases[c];
            let start = Instant::now();
            let r = client
                .post(&url)
                .json(&json!({"pesel": pesel, "password": password}))
                .send()
                .await
                .expect("request sent");
            let status = r.status().as_u16();
            let headers = comparable(r.headers());
            let body: Value = r.json().await.expect("a JSON body");
            let took = start.elapsed();
            if round < WARM_UP {
                continue;
            }
            times[c].push(took);
            match &first[c] {
                None => first[c] = Some((status, headers, body)),
                Some(f) => assert_eq!(f, &(status, headers, body), "{} varies", cases[c].0),
            }
        }
    }

    let [unknown, no_pw, wrong, control]: [_; 4] = first
        .into_iter()
        .map(|f| f.expect("answers"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("four cases");
    assert_eq!(unknown.0, 401);
    assert_eq!(unknown.2["code"], "invalid_credentials");
    assert_eq!(unknown, no_pw, "unknown PESEL vs no password");
    assert_eq!(unknown, wrong, "unknown PESEL vs wrong password");

    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    for (c, m) in cases.iter().zip(&medians) {
        eprintln!("{:>16}: median {m:?} over {ROUNDS}", c.0);
    }
    let three = &medians[..3];
    let (lo, hi) = (three.iter().min().unwrap(), three.iter().max().unwrap());
    let spread = hi.as_secs_f64() / lo.as_secs_f64();
    assert!(
        spread <= 1.10,
        "medians differ by {:.1} %",
        (spread - 1.0) * 100.0
    );
    // The control must stand out: the measurement can see a skipped hash.
    assert_eq!(control.0, 422);
    let gap = lo.as_secs_f64() / medians[3].as_secs_f64();
    assert!(
        gap > 1.25,
        "a path without hashing is only {gap:.2}x faster: the test could not see a difference"
    );
    eprintln!(
        "three medians within {:.1} %; the no-hash control {gap:.2}x faster",
        (spread - 1.0) * 100.0
    );
}
