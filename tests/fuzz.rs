//! The fuzz targets (tests/fuzz, docs/attack-tools.md) in `cargo test`:
//! the committed corpus (the fewest inputs covering what the fuzzer reached,
//! `run.sh --merge`) and every crash it has found (tests/fuzz/regressions),
//! replayed through the same oracles in a normal build, so a crash once fixed
//! stays fixed. A short coverage-guided run of each target is ignored by
//! default: building the instrumented targets takes 4–7 minutes here
//! (`cargo test --test fuzz -- --ignored`; `FUZZ_SMOKE_SECONDS`, default 5).

mod support;

#[path = "fuzz/src/lib.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_corpus_input_and_every_crash_found_passes_the_oracles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let (mut replayed, mut regressions, mut failed) = (0, 0, Vec::new());
    for (name, target) in targets::TARGETS {
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("readable dir").path();
                let data = std::fs::read(&path).expect("readable input");
                if std::panic::catch_unwind(|| target(&data)).is_err() {
                    failed.push(path.display().to_string());
                }
                replayed += 1;
                regressions += usize::from(dir == "regressions");
            }
        }
    }
    assert!(failed.is_empty(), "oracles failed on: {failed:#?}");
    // The seeds of all five targets at least, and every crash ever found.
    assert!(
        replayed >= 25 && regressions >= 2,
        "{replayed} inputs replayed"
    );
}

#[test]
#[ignore = "builds the instrumented targets (4-7 min): cargo test --test fuzz -- --ignored"]
fn a_short_fuzz_run_of_every_target_finds_no_crash() {
    let seconds = std::env::var("FUZZ_SMOKE_SECONDS").unwrap_or_else(|_| "5".into());
    support::run_suite("tests/fuzz/run.sh", &[&seconds]);
}
