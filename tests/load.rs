//! A 20-second k6 smoke of census-day.js against the service on a real Redis
//! (the full scenarios: `tests/load/run.sh SCENARIO`).

mod support;

#[test]
fn census_day_smoke_meets_its_thresholds() {
    support::run_suite("tests/load/run.sh", &["--smoke"]);
}
