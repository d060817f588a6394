//! The browser page in real headless Chromium (tests/e2e/, Playwright + axe).

mod support;

/// tests/e2e/run.sh writes to one directory (target/e2e: service and IdP logs,
/// screenshots) and picks its ports just before binding: two runs at once
/// clobber each other's logs and can take each other's ports. One at a time.
static ONE_RUN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_run() -> std::sync::MutexGuard<'static, ()> {
    ONE_RUN.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn the_login_page_works_in_chromium_and_is_accessible() {
    let _one = one_run();
    support::run_suite("tests/e2e/run.sh", &[]);
}

/// login.gov.pl through the test IdP (tests/saml/idp.py): the card, the node login, the
/// reclaim screen (tests/e2e/national-node.test.mjs). Needs the SAML service provider.
#[cfg(feature = "national-node")]
#[test]
fn the_login_gov_pl_login_and_reclaim_work_in_chromium() {
    let _one = one_run();
    support::run_suite("tests/e2e/run.sh", &["--national-node"]);
}
