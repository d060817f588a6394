//! Fault injection against real processes under a k6 load (tests/faults/run.sh,
//! docs/attack-tools.md): a replica SIGKILLed, Redis stopped, paused and out of
//! memory, and a replica cut off from Redis where a network namespace can be
//! made. About two minutes; needs k6, redis-server, redis-cli, curl, python3.

mod support;

#[test]
fn the_service_survives_its_faults_and_loses_nothing() {
    support::run_suite("tests/faults/run.sh", &[]);
}
