//! The per-client rate limit, shared by every replica (API.md: "a client gets
//! the limit, within 10 %, whatever replica it reaches").
//!
//! One token bucket per client network (the address cut to
//! `rate_limit.ipv4_prefix` / `ipv6_prefix` bits, then keyed-hashed) lives in
//! the store. A request never waits for the store: the replica decides from
//! its last view of the bucket, extrapolated by the refill rate, minus what it
//! took since. Every admitted request wakes a background task that reports
//! the tokens taken, in one batch for all clients, and reads back the shared
//! balances; batches run back to back, so a replica's view lags by about one
//! store round trip and the overshoot across N replicas is a few requests,
//! not N × the limit. While the store is down the replica keeps deciding
//! from its own view (the login itself fails closed anyway).

use crate::clock::{Clock, Millis};
use crate::domain::rate_limit::{Bucket, RatePolicy};
use crate::keys::Keys;
use crate::store::{RateTake, Store};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// After a failed report, wait this long before the next.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(250);

pub struct SharedRateLimiter {
    policy: RatePolicy,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    keys: Arc<Keys>,
    clock: Arc<dyn Clock>,
    /// A std mutex: held for a few map operations, never across an `.await`.
    clients: Mutex<HashMap<[u8; 16], View>>,
    dirty: Arc<Notify>,
}

/// One client's bucket as this replica sees it.
#[derive(Debug, Clone, Copy)]
struct View {
    /// The shared bucket at the last report (local clock).
    known: Bucket,
    /// Taken here, not reported yet.
    unreported: u32,
    /// Taken here, in the report under way.
    reporting: u32,
}

impl SharedRateLimiter {
    pub fn new(
        policy: RatePolicy,
        ipv4_prefix: u8,
        ipv6_prefix: u8,
        keys: Arc<Keys>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            policy,
            ipv4_prefix,
            ipv6_prefix,
            keys,
            clock,
            clients: Mutex::default(),
            dirty: Arc::new(Notify::new()),
        })
    }

    fn clients(&self) -> MutexGuard<'_, HashMap<[u8; 16], View>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The network a client is counted by.
    pub fn network(&self, ip: IpAddr) -> IpNet {
        let prefix = match ip {
            IpAddr::V4(_) => self.ipv4_prefix,
            IpAddr::V6(_) => self.ipv6_prefix,
        };
        IpNet::new(ip, prefix)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(ip))
    }

    /// Takes a token for `ip`'s network, or says how many seconds until one
    /// is free. A map lookup and no I/O.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let client = self.keys.client_key(&self.network(ip));
        let now = self.clock.now();
        let mut clients = self.clients();
        let view = clients.entry(client).or_insert(View {
            known: self.policy.full(now),
            unreported: 0,
            reporting: 0,
        });
        let taken = i64::from(view.unreported + view.reporting) * 1000;
        let available = self.policy.refill(view.known, now) - taken;
        if available < 1000 {
            let wait_ms = self.policy.ms_to_refill(1000 - available);
            return Err(crate::clock::seconds_until(0, wait_ms));
        }
        view.unreported += 1;
        drop(clients);
        self.dirty.notify_one();
        Ok(())
    }

    /// Reports what was taken since the last report and reads the shared
    /// balances back. Returns how many clients were reported.
    pub async fn report(&self, store: &dyn Store) -> Result<usize, crate::store::StoreError> {
        let batch: Vec<RateTake> = self
            .clients()
            .iter_mut()
            .filter(|(_, v)| v.unreported > 0)
            .map(|(client, v)| {
                v.reporting = v.unreported;
                v.unreported = 0;
                RateTake {
                    client: *client,
                    taken: v.reporting,
                }
            })
            .collect();
        if batch.is_empty() {
            return Ok(0);
        }
        let result = store.take_rate_tokens(&batch, &self.policy).await;
        let now = self.clock.now();
        let mut clients = self.clients();
        for (i, take) in batch.iter().enumerate() {
            let Some(view) = clients.get_mut(&take.client) else {
                continue;
            };
            match &result {
                // The store's balance includes this batch; its time may be
                // skewed from ours, so the view is dated by our clock.
                Ok(balances) => {
                    if let Some(b) = balances.get(i) {
                        view.known = Bucket {
                            milli_tokens: b.milli_tokens,
                            at: now,
                        };
                    }
                }
                // Not reported: keep it for the next report.
                Err(_) => view.unreported += view.reporting,
            }
            view.reporting = 0;
        }
        result.map(|_| batch.len())
    }

    /// Forgets clients whose bucket is full again and nothing is pending:
    /// they look exactly like clients never seen.
    pub fn forget_idle(&self, now: Millis) {
        let policy = self.policy;
        self.clients().retain(|_, v| {
            v.unreported > 0 || v.reporting > 0 || policy.refill(v.known, now) < policy.capacity()
        });
    }

    /// Runs the reporter until the limiter is dropped: a report whenever
    /// tokens were taken, back to back under load; idle clients are
    /// forgotten once a minute.
    pub fn spawn_reporter(self: &Arc<Self>, store: Arc<dyn Store>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let dirty = self.dirty.clone();
        tokio::spawn(async move {
            let mut last_sweep = tokio::time::Instant::now();
            loop {
                let Some(limiter) = weak.upgrade() else {
                    return;
                };
                let notified = dirty.notified();
                tokio::pin!(notified);
                // Register interest before reporting, so a take during the
                // report wakes the next round.
                notified.as_mut().enable();
                if limiter.report(store.as_ref()).await.is_err() {
                    tokio::time::sleep(RETRY_AFTER_ERROR).await;
                }
                if last_sweep.elapsed() > Duration::from_secs(60) {
                    limiter.forget_idle(limiter.clock.now());
                    last_sweep = tokio::time::Instant::now();
                }
                drop(limiter);
                // Wake for new takes, or once a minute for the sweep.
                let _ = tokio::time::timeout(Duration::from_secs(60), notified).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::memory::MemoryStore;
    use secrecy::SecretString;

    fn limiter(clock: Arc<ManualClock>) -> Arc<SharedRateLimiter> {
        SharedRateLimiter::new(
            RatePolicy {
                per_minute: 60,
                burst: 3,
            },
            32,
            64,
            Arc::new(Keys::from_pepper(&SecretString::from("p".to_owned()))),
            clock,
        )
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let l = limiter(ManualClock::new(0));
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(l.network(a), l.network(b));
        assert_eq!(l.network(a).to_string(), "2001:db8:1:2::/64");
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(l.network(v4).to_string(), "192.0.2.7/32");
    }

    #[tokio::test]
    async fn two_replicas_share_one_bucket() {
        let clock = ManualClock::new(1_000_000);
        let store = MemoryStore::with_clock(clock.clone());
        let (a, b) = (limiter(clock.clone()), limiter(clock.clone()));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut admitted = 0;
        for i in 0..20 {
            let replica = if i % 2 == 0 { &a } else { &b };
            if replica.check(ip).is_ok() {
                admitted += 1;
            }
            replica.report(&store).await.unwrap();
        }
        // The burst of 3, plus at most one that the other replica admitted
        // before it heard of the last take; each replica counting alone
        // would have admitted 3, 6 together.
        assert_eq!(admitted, 4);
        // The debt is repaid first: two seconds bring the bucket to 1 token.
        clock.advance(Duration::from_secs(2));
        assert!(a.check(ip).is_ok());
        a.report(&store).await.unwrap();
        assert!(a.check(ip).is_err());
    }
}
