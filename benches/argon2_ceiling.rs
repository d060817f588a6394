//! The physical ceiling of login throughput, and the service's hashing pool
//! measured against it in the same run (machines here are shared and noisy,
//! so only the ratio means something).
//!
//! Ceiling: the stock `argon2` crate in a plain loop on every core
//! (`Argon2::hash_password`, a fresh buffer per hash as the crate does by
//! default, default allocator), with the parameters of `config/default.toml`.
//! It knows nothing of census-login. Pool: `HashPool` saturated with
//! verifications from as many concurrent callers as it has places, as logins
//! use it. The two alternate (ceiling, pool, ceiling, pool) so that drift in
//! the machine's load hits both.
//!
//! `cargo bench --bench argon2_ceiling [-- SECONDS]` (default 5 s per phase);
//! prints hashes/s of each phase and the ratio pool ÷ ceiling, and with
//! `--json` one JSON line. `-- SECONDS --ceiling-only` measures the ceiling
//! alone (one JSON line), as `tests/load/capacity.sh` does around its runs.

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, Version};
use census_login::auth::hasher::{Argon2Config, HashPool};
use census_login::metrics::Metrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONFIG: Argon2Config = Argon2Config {
    memory_kib: 19_456,
    iterations: 2,
    parallelism: 1,
};

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The stock crate on every core for `secs`: hashes per second.
fn ceiling(secs: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..cores())
        .map(|_| {
            let (stop, count) = (stop.clone(), count.clone());
            std::thread::spawn(move || {
                let params = Params::new(CONFIG.memory_kib, CONFIG.iterations, 1, None)
                    .expect("valid parameters");
                let argon2 =
                    Argon2::new_with_secret(b"pepper", Algorithm::Argon2id, Version::V0x13, params)
                        .expect("valid secret");
                while !stop.load(Ordering::Relaxed) {
                    let hash = argon2.hash_password(b"Spis2021Ok").expect("hash");
                    std::hint::black_box(hash);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(secs);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The service's pool, kept full of verifications for `secs`: per second.
fn pool(secs: Duration) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let slots = cores();
        let pool = Arc::new(
            HashPool::new(
                b"pepper",
                CONFIG,
                slots,
                slots,
                // Same priority as the plain loop it is compared with.
                0,
                Arc::new(Metrics::new("bench")),
            )
            .expect("pool"),
        );
        let count = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + secs;
        let callers: Vec<_> = (0..2 * slots)
            .map(|_| {
                let (pool, count) = (pool.clone(), count.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let Some(permit) = pool.try_admit() else {
                            tokio::task::yield_now().await;
                            continue;
                        };
                        let _ = pool.verify(&permit, "Spis2021Ok", None).await;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for c in callers {
            let _ = c.await;
        }
        count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs = args
        .iter()
        .find_map(|a| a.parse::<f64>().ok())
        .map_or(Duration::from_secs(5), Duration::from_secs_f64);
    let json = args.iter().any(|a| a == "--json");
    if args.iter().any(|a| a == "--ceiling-only") {
        // tests/load/capacity.sh: the ceiling alone, around its login runs.
        println!(
            "{{\"ceiling_hashes_per_s\":{:.1},\"cores\":{}}}",
            ceiling(secs),
            cores()
        );
        return;
    }
    let (mut ceilings, mut pools) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        ceilings.push(ceiling(secs));
        pools.push(pool(secs));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (c, p) = (mean(&ceilings), mean(&pools));
    if json {
        println!(
            "{{\"ceiling_hashes_per_s\":{c:.1},\"pool_hashes_per_s\":{p:.1},\"ratio\":{:.3},\"cores\":{}}}",
            p / c,
            cores()
        );
    } else {
        println!(
            "argon2 ceiling (stock crate, {} threads): {:?} → {c:.1}/s",
            cores(),
            ceilings
        );
        println!("census-login pool: {pools:?} → {p:.1}/s");
        println!("pool ÷ ceiling = {:.3}", p / c);
    }
}
