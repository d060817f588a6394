//! Schemathesis against the live service from its own OpenAPI documents, on
//! both listeners (tests/schemathesis/run.sh; docs/attack-tools.md).

mod support;

#[test]
fn both_listeners_match_their_openapi_documents_under_fuzzing() {
    support::run_suite("tests/schemathesis/run.sh", &[]);
}
