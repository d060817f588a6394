//! The test IdP standing in for login.gov.pl (tests/saml/idp.py, pysaml2 + xmlsec1) works
//! and can refuse: tests/saml/selftest.py checks its answers with xmlsec1.

mod support;

#[test]
fn the_test_idp_answers_and_refuses_as_specified() {
    support::run_suite("tests/saml/selftest.sh", &[]);
}
