//! Alert rules with promtool, and every dashboard and alert expression
//! against a real Prometheus scraping the running service.

mod support;

#[test]
fn alert_rules_pass_promtool_checks_and_unit_tests() {
    support::run_suite("tests/monitoring/check-rules.sh", &[]);
}

#[test]
fn every_dashboard_and_alert_expression_works_against_real_prometheus() {
    support::run_suite("tests/monitoring/live-check.sh", &[]);
}
