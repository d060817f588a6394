//! The browser page in real headless Chromium (tests/e2e/, Playwright + axe).

mod support;

#[test]
fn the_login_page_works_in_chromium_and_is_accessible() {
    support::run_suite("tests/e2e/run.sh", &[]);
}
