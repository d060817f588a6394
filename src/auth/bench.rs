//! `census-login bench-hash`: how many Argon2id hashes per second the
//! configured parameters allow on this machine. This is the physical ceiling
//! of login throughput; load tests report their results against it.

use crate::config::Settings;
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, Version};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub fn run(
    settings: &Settings,
    duration: Duration,
    threads: Option<usize>,
    json: bool,
) -> ExitCode {
    let p = &settings.password;
    let params = match Params::new(
        p.argon2_memory_kib,
        p.argon2_iterations,
        p.argon2_parallelism,
        None,
    ) {
        Ok(params) => params,
        Err(e) => {
            eprintln!("census-login: bad Argon2 parameters: {e}");
            return ExitCode::FAILURE;
        }
    };
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, count, params) = (stop.clone(), count.clone(), params.clone());
            std::thread::spawn(move || {
                let secret = [7u8; 32];
                let Ok(argon2) =
                    Argon2::new_with_secret(&secret, Algorithm::Argon2id, Version::V0x13, params)
                else {
                    return;
                };
                while !stop.load(Ordering::Relaxed) {
                    if argon2.hash_password(b"Bench2021Pass").is_ok() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let hashes = count.load(Ordering::Relaxed);
    let per_second = hashes as f64 / elapsed;
    let avx2 = cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx2");
    if json {
        println!(
            "{}",
            serde_json::json!({
                "threads": threads,
                "memoryKib": p.argon2_memory_kib,
                "iterations": p.argon2_iterations,
                "parallelism": p.argon2_parallelism,
                "hashes": hashes,
                "seconds": elapsed,
                "hashesPerSecond": per_second,
                "hashesPerSecondPerThread": per_second / threads as f64,
                "avx2": avx2,
            })
        );
    } else {
        println!(
            "Argon2id m={} KiB t={} p={}: {:.1} hashes/s on {} threads ({:.1} per thread; {} hashes in {:.1} s; AVX2 {})",
            p.argon2_memory_kib,
            p.argon2_iterations,
            p.argon2_parallelism,
            per_second,
            threads,
            per_second / threads as f64,
            hashes,
            elapsed,
            if avx2 { "available" } else { "not available" },
        );
    }
    ExitCode::SUCCESS
}
