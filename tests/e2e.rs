//! The browser page in real headless Chromium (tests/e2e/, Playwright + axe).

mod support;

#[test]
fn the_login_page_works_in_chromium_and_is_accessible() {
    support::run_suite("tests/e2e/run.sh", &[]);
}

/// login.gov.pl through the test IdP (tests/saml/idp.py): the card, the node login, the
/// reclaim screen (tests/e2e/national-node.test.mjs). Needs the SAML service provider.
#[cfg(feature = "national-node")]
#[test]
fn the_login_gov_pl_login_and_reclaim_work_in_chromium() {
    support::run_suite("tests/e2e/run.sh", &["--national-node"]);
}
