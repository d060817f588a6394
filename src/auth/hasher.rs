//! The Argon2id pool: hashing never runs on the async workers. `slots` OS
//! threads take jobs from a channel; at most `queue` jobs may wait. Admission
//! is a non-blocking semaphore take ([`HashPool::try_admit`]), so when the pool
//! is full a request is refused in microseconds and memory stays bounded
//! (slots × Argon2 memory) however many requests arrive.
//!
//! Each thread owns its Argon2 memory blocks for its whole life and reuses
//! them for every hash and verification (`hash_password_into_with_memory`):
//! no 19 MiB allocation, page faults and zeroing per hash, and no allocator
//! tuning to give freed buffers back. RSS is slots × Argon2 memory plus a
//! small constant from start-up on.

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Config {
    fn params(&self) -> Result<Params, HashError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| HashError(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("hashing failed: {0}")]
pub struct HashError(String);

enum Job {
    Hash {
        password: SecretString,
        reply: oneshot::Sender<Result<String, HashError>>,
    },
    Verify {
        password: SecretString,
        phc: String,
        reply: oneshot::Sender<bool>,
    },
}

/// A place in the pool (running or queued), held for the whole of a request's
/// hashing work and released when dropped.
pub struct HashPermit(#[allow(dead_code)] OwnedSemaphorePermit);

pub struct HashPool {
    jobs: crossbeam_channel::Sender<Job>,
    admission: Arc<Semaphore>,
    capacity: usize,
    slots: usize,
    busy: Arc<AtomicI64>,
    /// Recent hash time in microseconds, for the Retry-After estimate.
    recent_micros: Arc<AtomicU64>,
    config: Argon2Config,
    /// Verified against when there is nothing to verify, so that an unknown
    /// PESEL costs the same time as a wrong password.
    dummy_phc: String,
}

struct Worker {
    secret: Arc<[u8]>,
    config: Argon2Config,
    busy: Arc<AtomicI64>,
    recent_micros: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    /// The thread's own Argon2 memory, sized for the configured parameters.
    memory: Vec<Block>,
}

fn hash_error(e: impl std::fmt::Display) -> HashError {
    HashError(e.to_string())
}

impl Worker {
    fn new(
        secret: Arc<[u8]>,
        config: Argon2Config,
        busy: Arc<AtomicI64>,
        recent_micros: Arc<AtomicU64>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, HashError> {
        let blocks = config.params()?.block_count();
        Ok(Self {
            secret,
            config,
            busy,
            recent_micros,
            metrics,
            memory: vec![Block::new(); blocks],
        })
    }

    /// Argon2 into `out` with this thread's memory; parameters other than the
    /// configured ones (an older hash) get memory of their own for this call.
    fn argon2_into(
        &mut self,
        argon2: &Argon2<'_>,
        params: &Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        let blocks = params.block_count();
        if blocks <= self.memory.len() {
            argon2.hash_password_into_with_memory(password, salt, out, &mut self.memory[..blocks])
        } else {
            argon2.hash_password_into_with_memory(password, salt, out, vec![Block::new(); blocks])
        }
        .map_err(hash_error)
    }

    /// A new PHC string for `password` with the configured parameters.
    fn hash(&mut self, password: &[u8]) -> Result<String, HashError> {
        let params = self.config.params()?;
        let secret = self.secret.clone();
        let argon2 =
            Argon2::new_with_secret(&secret, Algorithm::Argon2id, Version::V0x13, params.clone())
                .map_err(hash_error)?;
        let salt = Salt::generate();
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.argon2_into(&argon2, &params, password, &salt, &mut out)?;
        Ok(PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(hash_error)?,
            salt: Some(salt),
            hash: Some(Output::new(&out).map_err(hash_error)?),
        }
        .to_string())
    }

    /// Whether `password` matches the PHC string `phc` (any Argon2 variant and
    /// parameters it names); the comparison is constant-time.
    fn verify(&mut self, password: &[u8], phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return false;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
            return false;
        };
        let Ok(version) = hash.version.map_or(Ok(Version::V0x13), Version::try_from) else {
            return false;
        };
        let secret = self.secret.clone();
        let Ok(argon2) = Argon2::new_with_secret(&secret, algorithm, version, params.clone())
        else {
            return false;
        };
        let mut out = vec![0u8; expected.len()];
        self.argon2_into(&argon2, &params, password, &salt, &mut out)
            .is_ok()
            && Output::new(&out).is_ok_and(|computed| computed == expected)
    }

    fn run(mut self, jobs: crossbeam_channel::Receiver<Job>, nice: i32) {
        lower_priority(nice);
        // Ends when every sender is gone, i.e. when the pool is dropped.
        for job in jobs {
            self.busy.fetch_add(1, Ordering::Relaxed);
            self.metrics.hash_slots_in_use.inc();
            let start = Instant::now();
            // Metrics are recorded before the reply, so a caller that has its
            // answer also sees the work counted.
            let recent_micros = self.recent_micros.clone();
            let finish = move |metrics: &Metrics| {
                let elapsed = start.elapsed();
                metrics.hash_duration.observe(elapsed.as_secs_f64());
                recent_micros.store(elapsed.as_micros() as u64, Ordering::Relaxed);
            };
            match job {
                Job::Hash { password, reply } => {
                    let result = self.hash(password.expose_secret().as_bytes());
                    finish(&self.metrics);
                    let _ = reply.send(result);
                }
                Job::Verify {
                    password,
                    phc,
                    reply,
                } => {
                    // Skip the work if the request is already gone.
                    let ok = !reply.is_closed()
                        && self.verify(password.expose_secret().as_bytes(), &phc);
                    finish(&self.metrics);
                    let _ = reply.send(ok);
                }
            }
            self.metrics.hash_slots_in_use.dec();
            self.busy.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Hashing threads run at the lowest CPU priority (nice 19): they get every
/// cycle the request workers leave, so cheap answers (locked, overloaded,
/// session checks) and Redis round trips stay fast while every core hashes.
/// Measured under flood.js on 2 cores: cheap p99 7 ms at nice 19, 11-20 ms at
/// nice 5. Should request work ever take the whole CPU, hashing slows, the
/// bounded queue fills and logins are shed with 503, never silently starved.
/// Linux nice values are per thread; elsewhere this does nothing.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only changes the calling thread's nice value
    // (who = its thread id); no memory is touched.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

impl HashPool {
    pub fn new(
        secret: &[u8],
        config: Argon2Config,
        slots: usize,
        queue: usize,
        nice: i32,
        metrics: Arc<Metrics>,
    ) -> Result<Self, HashError> {
        let slots = slots.max(1);
        let capacity = slots + queue;
        let secret: Arc<[u8]> = Arc::from(secret);
        let (tx, rx) = crossbeam_channel::unbounded();
        let busy = Arc::new(AtomicI64::new(0));
        let recent_micros = Arc::new(AtomicU64::new(0));
        let new_worker = || {
            Worker::new(
                secret.clone(),
                config,
                busy.clone(),
                recent_micros.clone(),
                metrics.clone(),
            )
        };
        let dummy_phc = {
            let mut random = [0u8; 16];
            rand::Rng::fill_bytes(&mut rand::rng(), &mut random);
            new_worker()?.hash(&random)?
        };
        for i in 0..slots {
            let worker = new_worker()?;
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker.run(rx, nice))
                .map_err(|e| HashError(e.to_string()))?;
        }
        metrics.hash_slots.set(slots as i64);
        metrics.hash_queue_capacity.set(queue as i64);
        Ok(Self {
            jobs: tx,
            admission: Arc::new(Semaphore::new(capacity)),
            capacity,
            slots,
            busy,
            recent_micros,
            config,
            dummy_phc,
        })
    }

    /// A pool that runs no thread and admits nothing: for commands that never
    /// hash (the helpline's unlock from the command line).
    pub fn disabled(config: Argon2Config) -> Self {
        let (jobs, _) = crossbeam_channel::unbounded();
        Self {
            jobs,
            admission: Arc::new(Semaphore::new(0)),
            capacity: 0,
            slots: 1,
            busy: Arc::default(),
            recent_micros: Arc::default(),
            config,
            dummy_phc: String::new(),
        }
    }

    /// Whether a place is free right now (a probe: nothing is taken).
    pub fn has_room(&self) -> bool {
        self.admission.available_permits() > 0
    }

    /// Takes a place in the pool without waiting, or `None` when it is full.
    pub fn try_admit(&self) -> Option<HashPermit> {
        self.admission
            .clone()
            .try_acquire_owned()
            .ok()
            .map(HashPermit)
    }

    /// Jobs admitted but not running.
    pub fn queued(&self) -> i64 {
        let admitted = (self.capacity - self.admission.available_permits()) as i64;
        (admitted - self.busy.load(Ordering::Relaxed)).max(0)
    }

    /// Seconds until a full queue has likely drained: a client told to come
    /// back sooner would only be refused again.
    pub fn retry_after_secs(&self) -> u64 {
        let per_hash = self.recent_micros.load(Ordering::Relaxed).max(10_000);
        let drain = per_hash * self.capacity as u64 / self.slots as u64;
        drain.div_ceil(1_000_000).clamp(1, 30)
    }

    pub async fn hash(&self, _permit: &HashPermit, password: &str) -> Result<String, HashError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Hash {
            password: SecretString::from(password.to_owned()),
            reply,
        })?;
        rx.await
            .map_err(|_| HashError("hash worker stopped".into()))?
    }

    /// Verifies against `phc`, or against the dummy hash when `phc` is `None`
    /// (and then answers `false`), so both cost the same.
    pub async fn verify(
        &self,
        _permit: &HashPermit,
        password: &str,
        phc: Option<&str>,
    ) -> Result<bool, HashError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Verify {
            password: SecretString::from(password.to_owned()),
            phc: phc.unwrap_or(&self.dummy_phc).to_owned(),
            reply,
        })?;
        let ok = rx
            .await
            .map_err(|_| HashError("hash worker stopped".into()))?;
        Ok(ok && phc.is_some())
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.jobs
            .send(job)
            .map_err(|_| HashError("hash workers stopped".into()))
    }

    /// Whether `phc` was made with other parameters than the configured ones.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return true;
        };
        let current = match self.config.params() {
            Ok(p) => p,
            Err(_) => return false,
        };
        let same = hash.algorithm == Algorithm::Argon2id.ident()
            && hash.version == Some(Version::V0x13.into())
            && Params::try_from(&hash).is_ok_and(|p| {
                p.m_cost() == current.m_cost()
                    && p.t_cost() == current.t_cost()
                    && p.p_cost() == current.p_cost()
            });
        !same
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Argon2Config = Argon2Config {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn pool(slots: usize, queue: usize) -> HashPool {
        HashPool::new(
            b"pepper",
            FAST,
            slots,
            queue,
            19,
            Arc::new(Metrics::new("test")),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let p = pool(1, 1);
        let permit = p.try_admit().unwrap();
        let phc = p.hash(&permit, "Spis2021Ok").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(p.verify(&permit, "Spis2021Ok", Some(&phc)).await.unwrap());
        assert!(!p.verify(&permit, "spis2021ok", Some(&phc)).await.unwrap());
        assert!(!p.verify(&permit, "anything", None).await.unwrap());
    }

    #[tokio::test]
    async fn the_pepper_is_part_of_the_hash() {
        let a = pool(1, 0);
        let b = HashPool::new(b"other", FAST, 1, 0, 19, Arc::new(Metrics::new("t"))).unwrap();
        let permit = a.try_admit().unwrap();
        let phc = a.hash(&permit, "Spis2021Ok").await.unwrap();
        let permit_b = b.try_admit().unwrap();
        assert!(!b.verify(&permit_b, "Spis2021Ok", Some(&phc)).await.unwrap());
    }

    /// Reused memory must give exactly the stock crate's results: a hash made
    /// here verifies with `argon2`'s own verifier, and the other way round,
    /// including a hash with larger parameters than this thread's memory.
    #[tokio::test]
    async fn reused_memory_agrees_with_the_stock_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let p = pool(1, 0);
        let permit = p.try_admit().unwrap();
        let stock = |c: Argon2Config| {
            Argon2::new_with_secret(
                b"pepper",
                Algorithm::Argon2id,
                Version::V0x13,
                c.params().unwrap(),
            )
            .unwrap()
        };
        for _ in 0..3 {
            let ours = p.hash(&permit, "Spis2021Ok").await.unwrap();
            let parsed = PasswordHash::new(&ours).unwrap();
            assert!(stock(FAST).verify_password(b"Spis2021Ok", &parsed).is_ok());
            assert!(stock(FAST).verify_password(b"Spis2021Ko", &parsed).is_err());
        }
        let bigger = Argon2Config {
            memory_kib: 256,
            iterations: 2,
            ..FAST
        };
        for config in [bigger, FAST] {
            let theirs = stock(config).hash_password(b"Spis2021Ok").unwrap();
            let theirs = theirs.to_string();
            let verify = |password| p.verify(&permit, password, Some(&theirs));
            assert!(verify("Spis2021Ok").await.unwrap(), "{config:?}");
            assert!(!verify("Spis2021Ko").await.unwrap(), "{config:?}");
        }
    }

    #[test]
    fn admission_is_bounded_by_slots_plus_queue() {
        let p = pool(2, 3);
        let permits: Vec<_> = (0..5).map(|_| p.try_admit().unwrap()).collect();
        assert!(p.try_admit().is_none());
        drop(permits);
        assert!(p.try_admit().is_some());
    }

    #[tokio::test]
    async fn old_parameters_need_a_rehash() {
        let p = pool(1, 0);
        let permit = p.try_admit().unwrap();
        let phc = p.hash(&permit, "Spis2021Ok").await.unwrap();
        assert!(!p.needs_rehash(&phc));
        let stronger = HashPool::new(
            b"pepper",
            Argon2Config {
                iterations: 2,
                ..FAST
            },
            1,
            0,
            19,
            Arc::new(Metrics::new("t")),
        )
        .unwrap();
        assert!(stronger.needs_rehash(&phc));
    }
}
