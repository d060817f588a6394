//! Criterion benchmarks of the pure functions on every request's path: PESEL
//! parsing, the new-password policy (incl. the common-password list), maiden
//! name normalization and the keyed PESEL hash. They show these cost
//! microseconds or less, i.e. nothing beside one Argon2 hash (~tens of ms).
//!
//! `cargo bench --bench domain`

use census_login::domain::{MaidenName, NewPassword, Pesel};
use census_login::keys::Keys;
use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use std::hint::black_box;
use time::macros::date;

fn pesel(c: &mut Criterion) {
    let today = date!(2026 - 11 - 23);
    let mut g = c.benchmark_group("pesel");
    g.bench_function("parse_valid", |b| {
        b.iter(|| Pesel::parse(black_box("97071225308"), today))
    });
    g.bench_function("parse_2000s", |b| {
        b.iter(|| Pesel::parse(black_box("10210532057"), today))
    });
    g.bench_function("reject_checksum", |b| {
        b.iter(|| Pesel::parse(black_box("97071225309"), today))
    });
    g.bench_function("reject_format", |b| {
        b.iter(|| Pesel::parse(black_box("9707122530x"), today))
    });
    g.finish();
}

fn password(c: &mut Criterion) {
    let today = date!(2026 - 11 - 23);
    let owner = Pesel::parse("97071225308", today).ok();
    let mut g = c.benchmark_group("password_policy");
    g.bench_function("accept", |b| {
        b.iter(|| {
            NewPassword::parse(
                black_box("Spisowe2021Haslo"),
                black_box("Spisowe2021Haslo"),
                owner.as_ref(),
                8,
            )
        })
    });
    g.bench_function("reject_all_rules", |b| {
        b.iter(|| NewPassword::parse(black_box("łódź"), black_box("lodz"), owner.as_ref(), 8))
    });
    g.bench_function("reject_common", |b| {
        b.iter(|| NewPassword::parse(black_box("Password1"), black_box("Password1"), None, 8))
    });
    g.finish();
}

fn maiden_name(c: &mut Criterion) {
    let mut g = c.benchmark_group("maiden_name");
    g.bench_function("parse_and_normalize", |b| {
        b.iter(|| MaidenName::parse(black_box("Łukasiewicz-Wróblewska")).map(|n| n.normalized()))
    });
    g.bench_function("reject", |b| {
        b.iter(|| MaidenName::parse(black_box("Nowak2")))
    });
    g.finish();
}

fn keys(c: &mut Criterion) {
    let keys = Keys::from_pepper(&SecretString::from("bench-pepper-0123456789abcdef"));
    let pesel = Pesel::parse("97071225308", date!(2026 - 11 - 23)).expect("valid demo PESEL");
    let name = MaidenName::parse("Włodarczyk").expect("valid name");
    let mut g = c.benchmark_group("keys");
    g.bench_function("pesel_key", |b| {
        b.iter(|| keys.pesel_key(black_box(&pesel)))
    });
    g.bench_function("maiden_hash", |b| {
        b.iter(|| keys.maiden_hash(black_box(&name)))
    });
    g.finish();
}

criterion_group!(benches, pesel, password, maiden_name, keys);
criterion_main!(benches);
