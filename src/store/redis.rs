//! The Redis store: every flow step is one Lua script (or one pipeline), so it
//! is atomic across replicas and costs one round trip. All keys of one person
//! and the registry bucket holding them share a hash tag `{t}` and so one
//! slot: the scripts work unchanged on a single node and on Redis Cluster.
//! Key names and the registry encoding are in [`super::layout`] (the
//! arithmetic of the buckets too).
//!
//! Key layout (`{t}` = the first 4 hex of the [`PeselKey`], `<r>` its other
//! 28 hex; never the PESEL):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `census:{t}:r:<i>` | hash | registry bucket: 14-byte field → 9-byte value (maiden tag, reserved); bucket 0's `#` = the tag's bucket count |
//! | `census:{t}:<r>:lock` | hash | lockout state `f l u lf` (expires after `forget_after`) |
//! | `census:{t}:<r>:pend` | zset | reservations in flight, scored by expiry |
//! | `census:{t}:<r>:acct` | hash | `pw` PHC, `fl` first login, `gen` generation (moved on by a reset) |
//! | `census:{t}:<r>:ss`   | set  | hashes of the person's session tokens |
//! | `census:{t}:<r>:s:<token hash>` | hash | `fl`, `we`, `exp` (idle expiry); expires with the session |
//! | `census:rl:{<c>}`   | hash | rate-limit bucket of a client network (`<c>` keyed hash) `t` milli-tokens, `at`; expires once full |
//! | `census:{nopesel}:seq`  | string | arrival counter of no-PESEL requests |
//! | `census:{nopesel}:all`  | zset | references by arrival number |
//! | `census:{nopesel}:open` | zset | the same, not yet handled |
//! | `census:{nopesel}:req`  | hash | reference → request JSON |
//! | `census:{t}:<r>:sf:<token hash>` | string | OIDC: sealed facts of a session (auth time, acr); expires with the session |
//! | `census:{t}:<r>:code:<hash>` | hash | OIDC authorization code: `p` sealed grant, `s` session token hash, `g` generation |
//! | `census:{t}:<r>:at:<hash>` | hash | OIDC access token, as a code |
//! | `census:oidc:ar:<hash>` | string | OIDC authorization request waiting for a login (no person yet) |
//!
//! The `{nopesel}` keys expire together at `census.closes_at` + `census.retention`
//! (when the census has an end). Before this layout the requests were a list
//! `census:nopesel`, and a person's keys were `census:{<32 hex>}:…` with the
//! registry in `acct` (`mn`, `rsv`); [`Store::migrate`] moves both at start-up.
//!
//! Time: every script reads Redis `TIME` (see `lua/time.lua`), so replicas
//! with skewed clocks agree on lock ends, reservations and sessions.
//!
//! Every call is bounded by `store.timeout`; a call that does not finish in
//! time is an [`StoreError::Unavailable`] and the caller fails closed. The
//! connection reconnects by itself (ConnectionManager; the cluster client
//! refreshes its slot map; with Sentinel the master is looked up again after
//! an error), so recovery after a Redis restart or failover needs no restart here.
//!
//! Passwords come from `secrets.redis_password` and
//! `secrets.redis_sentinel_password` ([`RedisOptions`]), not from the URL, so
//! the URL is not a secret; a URL that does carry one keeps it.
//!
//! Durability: a write is acknowledged once the primary has applied it
//! (and, with `appendfsync everysec`, fsynced within a second). With
//! `store.wait_replicas = N` every settlement is followed by `WAIT N` in the
//! same round trip, so an acknowledged login, lock or password has reached N
//! replicas and survives a failover to one of them.

use super::layout::{self, RegistryEntry};
use super::{
    AccountRecord, AccountStatus, Begin, Begun, GrantKind, GrantLookup, LockedUntil, NoPeselPage,
    NoPeselQuery, NodeSession, PasswordWrite, PurgeProgress, RateBalance, RatePolicy, RateTake,
    Reclaimed, RegistryCounts, RegistryRecord, SessionRecord, SessionSpec, Settle, Settled, Store,
    StoreError, StoredNoPeselRequest,
};
use crate::clock::Clock;
use crate::clock::Millis;
use crate::domain::lockout::CONTENDED_RETRY;
use crate::domain::lockout::{LockState, LockoutPolicy};
use crate::keys::PeselKey;
use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisConnectionInfo, RedisFuture, Script,
    Value,
};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;

/// A script with the preludes it needs (`time.lua`, and `lockout.lua` for the
/// lockout transitions).
macro_rules! script {
    (lockout $file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/time.lua"),
                include_str!("lua/lockout.lua"),
                include_str!($file)
            ))
        })
    };
    (timed $file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("lua/time.lua"), include_str!($file))))
    };
    (lockout registry $file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/time.lua"),
                include_str!("lua/lockout.lua"),
                include_str!("lua/registry.lua"),
                include_str!($file)
            ))
        })
    };
    (timed registry $file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/time.lua"),
                include_str!("lua/registry.lua"),
                include_str!($file)
            ))
        })
    };
    (registry $file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/registry.lua"),
                include_str!($file)
            ))
        })
    };
    ($file:literal) => {
        LazyLock::new(|| Script::new(include_str!($file)))
    };
}
static BEGIN: LazyLock<Script> = script!(lockout registry "lua/begin.lua");
static SETTLE: LazyLock<Script> = script!(lockout "lua/settle.lua");
static TOUCH: LazyLock<Script> = script!(timed "lua/touch_session.lua");
static LOCKED_UNTIL: LazyLock<Script> = script!(timed "lua/locked_until.lua");
static ACCOUNT_STATUS: LazyLock<Script> = script!(timed registry "lua/account_status.lua");
static REGISTRY_UPSERT: LazyLock<Script> = script!(registry "lua/registry_upsert.lua");
static RATE_TAKE: LazyLock<Script> = script!(timed "lua/rate_take.lua");
static DELETE_SESSION: LazyLock<Script> = script!("lua/delete_session.lua");
static RESET: LazyLock<Script> = script!("lua/reset_account.lua");
static NOPESEL_ADD: LazyLock<Script> = script!("lua/nopesel_add.lua");
static NOPESEL_LIST: LazyLock<Script> = script!("lua/nopesel_list.lua");
static NOPESEL_HANDLED: LazyLock<Script> = script!("lua/nopesel_handled.lua");

/// The list of no-PESEL requests before the `{nopesel}` layout.
const OLD_NO_PESEL_KEY: &str = "census:nopesel";
const NO_PESEL_SEQ: &str = "census:{nopesel}:seq";
const NO_PESEL_ALL: &str = "census:{nopesel}:all";
const NO_PESEL_OPEN: &str = "census:{nopesel}:open";
const NO_PESEL_REQ: &str = "census:{nopesel}:req";
static PUT_GRANT: LazyLock<Script> = script!("lua/put_grant.lua");
static NODE_SESSION: LazyLock<Script> = script!(timed registry "lua/node_session.lua");
static RECLAIM: LazyLock<Script> = script!("lua/reclaim_account.lua");

/// A session read without the script: the session (None = no such session)
/// and, when asked for, its sealed facts.
type SessionRead = (Option<SessionRecord>, Option<String>);

fn saml_request_key(id_hash: &[u8; 32]) -> String {
    format!("census:saml:rq:{}", hex::encode(id_hash))
}

fn saml_assertion_key(id_hash: &[u8; 32]) -> String {
    format!("census:saml:as:{}", hex::encode(id_hash))
}
static USE_GRANT: LazyLock<Script> = script!("lua/use_grant.lua");

fn grant_suffix(kind: GrantKind, hash: &[u8; 32]) -> String {
    let prefix = match kind {
        GrantKind::Code => "code",
        GrantKind::AccessToken => "at",
    };
    format!("{prefix}:{}", hex::encode(hash))
}

fn authz_request_key(id_hash: &[u8; 32]) -> String {
    format!("census:oidc:ar:{}", hex::encode(id_hash))
}

/// One connection handle for any topology. Single and Cluster reconnect by
/// themselves; a Sentinel connection is dropped on error and the master
/// looked up again.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(::redis::aio::MultiplexedConnection),
    /// One node of a cluster, for the per-node SCANs of `migrate` and `purge`.
    Node(::redis::aio::MultiplexedConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) | Conn::Node(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(c) | Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) | Conn::Node(c) => c.get_db(),
        }
    }
}

enum Topology {
    Single,
    Cluster(Vec<ConnectionInfo>),
    /// Sentinels that name the current master of `service`.
    Sentinel(Box<AsyncMutex<::redis::sentinel::SentinelClient>>),
}

/// How [`RedisStore`] connects, besides the URL.
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// Bound of every call (and of connecting).
    pub timeout: Duration,
    /// `WAIT` after every settlement for this many replicas; 0 = off.
    pub wait_replicas: u32,
    pub wait_timeout: Duration,
    /// `AUTH` of the data nodes, unless the URL carries a password.
    pub password: Option<SecretString>,
    /// `AUTH` of the Sentinels (their own `requirepass`).
    pub sentinel_password: Option<SecretString>,
    /// Tests that replay the lockout model with chosen times pass their clock
    /// here; otherwise (always in production) the scripts read Redis `TIME`.
    pub clock: Option<Arc<dyn Clock>>,
}

/// `url` as connection info, with `password` unless the URL names one.
fn with_password(url: &str, password: Option<&SecretString>) -> Result<ConnectionInfo, StoreError> {
    // The redis crate's parse errors do not echo the URL (it may hold a password).
    let info = url.into_connection_info().map_err(unavailable)?;
    Ok(match password {
        Some(pw) if info.redis_settings().password().is_none() => {
            let redis = info
                .redis_settings()
                .clone()
                .set_password(pw.expose_secret());
            info.set_redis_settings(redis)
        }
        _ => info,
    })
}

/// `redis+sentinel://host1:26379,host2:26379/mymaster`: the sentinels and the
/// master's service name.
fn parse_sentinel_url(url: &str) -> Option<(Vec<String>, String)> {
    let rest = url.strip_prefix("redis+sentinel://")?;
    let (hosts, service) = rest.split_once('/')?;
    let service = service.trim_end_matches('/');
    let hosts: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{h}"))
        .collect();
    (!hosts.is_empty() && !service.is_empty()).then(|| (hosts, service.to_owned()))
}

pub struct RedisStore {
    topology: Topology,
    timeout: Duration,
    /// `None` until the first successful connection (cluster only: a single
    /// node uses a lazy ConnectionManager from the start). A tokio mutex because
    /// connecting awaits while holding it, so that a burst does not open one
    /// connection per request.
    conn: AsyncMutex<Option<Conn>>,
    /// `WAIT` after every reservation and settlement: (replicas, timeout in
    /// ms); 0 replicas = off.
    wait: (u32, u64),
    clock: Option<Arc<dyn Clock>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// `url` is one `redis://` or `rediss://` URL, a comma-separated list of
    /// them for Redis Cluster, or `redis+sentinel://s1:26379,s2:26379/service`
    /// for a Sentinel-managed primary. Does not connect yet: the first call
    /// does, so the service starts (not ready) while Redis is down.
    pub fn new(url: &str, timeout: Duration) -> Result<Arc<Self>, StoreError> {
        Self::with_options(
            url,
            RedisOptions {
                timeout,
                ..RedisOptions::default()
            },
        )
    }

    /// As [`new`](Self::new), with passwords, and with `wait_replicas > 0`
    /// every settlement waits until that many replicas have it (`WAIT`, in the
    /// same round trip), failing closed if they do not within `wait_timeout`.
    /// `WAIT` is not offered on Cluster (keyless command).
    pub fn with_options(url: &str, options: RedisOptions) -> Result<Arc<Self>, StoreError> {
        let RedisOptions {
            timeout,
            wait_replicas,
            wait_timeout,
            password,
            sentinel_password,
            clock,
        } = options;
        let wait = (wait_replicas, wait_timeout.as_millis() as u64);
        if url.trim_start().starts_with("redis+sentinel://") {
            let (sentinels, service) = parse_sentinel_url(url.trim()).ok_or_else(|| {
                unavailable(
                    "store.redis_url: expected redis+sentinel://host:port[,host:port…]/service",
                )
            })?;
            let sentinels = sentinels
                .iter()
                .map(|s| with_password(s, sentinel_password.as_ref()))
                .collect::<Result<Vec<_>, _>>()?;
            let nodes = password.map(|pw| {
                ::redis::sentinel::SentinelNodeConnectionInfo::default().set_redis_connection_info(
                    RedisConnectionInfo::default().set_password(pw.expose_secret()),
                )
            });
            let client = ::redis::sentinel::SentinelClient::build(
                sentinels,
                service,
                nodes,
                ::redis::sentinel::SentinelServerType::Master,
            )
            .map_err(unavailable)?;
            return Ok(Arc::new(Self {
                topology: Topology::Sentinel(Box::new(AsyncMutex::new(client))),
                timeout,
                conn: AsyncMutex::new(None),
                wait,
                clock,
            }));
        }
        let nodes = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| with_password(u, password.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let (topology, conn) = match nodes.as_slice() {
            [] => return Err(unavailable("store.redis_url is empty")),
            [one] => {
                let client = ::redis::Client::open(one.clone()).map_err(unavailable)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let manager =
                    ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
                (Topology::Single, Some(Conn::Single(manager)))
            }
            many => (Topology::Cluster(many.to_vec()), None),
        };
        if wait.0 > 0 && matches!(topology, Topology::Cluster(_)) {
            return Err(unavailable(
                "store.wait_replicas is not supported with Redis Cluster",
            ));
        }
        Ok(Arc::new(Self {
            topology,
            timeout,
            conn: AsyncMutex::new(conn),
            wait,
            clock,
        }))
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        let nodes = match &self.topology {
            Topology::Single => return Err(unavailable("no connection")),
            Topology::Sentinel(client) => {
                let config = ::redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout));
                let conn = client
                    .lock()
                    .await
                    .get_async_connection_with_config(&config)
                    .await
                    .map_err(unavailable)?;
                let conn = Conn::Sentinel(conn);
                *guard = Some(conn.clone());
                return Ok(conn);
            }
            Topology::Cluster(nodes) => nodes,
        };
        let client = ::redis::cluster::ClusterClientBuilder::new(nodes.clone())
            .connection_timeout(self.timeout)
            .response_timeout(self.timeout)
            .retries(1)
            .build()
            .map_err(unavailable)?;
        let conn = Conn::Cluster(client.get_async_connection().await.map_err(unavailable)?);
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// A connection to each master: the one connection, or one per
    /// listed cluster node that is a master (each master must be listed in
    /// `store.redis_url` for a complete SCAN).
    async fn masters(&self) -> Result<Vec<Conn>, StoreError> {
        let Topology::Cluster(nodes) = &self.topology else {
            return Ok(vec![self.conn().await?]);
        };
        let mut masters = Vec::new();
        for node in nodes {
            let client = ::redis::Client::open(node.clone()).map_err(unavailable)?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(unavailable)?;
            let role: Vec<Value> = ::redis::cmd("ROLE")
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if matches!(role.first(), Some(Value::BulkString(r)) if r == b"master") {
                masters.push(Conn::Node(conn));
            }
        }
        Ok(masters)
    }

    /// Moves the no-PESEL list of the old layout into `{nopesel}`, in arrival
    /// order: each request is added only if its reference is not there yet,
    /// and the old list goes last.
    async fn migrate_no_pesel(&self) -> Result<u64, StoreError> {
        let old: Vec<String> = self
            .run(|mut c| async move {
                ::redis::cmd("LRANGE")
                    .arg(OLD_NO_PESEL_KEY)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        let mut moved = 0;
        for json in &old {
            let request: StoredNoPeselRequest =
                serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if self.add_no_pesel_request(&request, None).await? {
                moved += 1;
            }
        }
        if !old.is_empty() {
            self.run(|mut c| async move {
                ::redis::cmd("DEL")
                    .arg(OLD_NO_PESEL_KEY)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(unavailable)
            })
            .await?;
            tracing::info!(moved, "no-PESEL requests moved to the {{nopesel}} layout");
        }
        Ok(moved)
    }

    /// Moves the old-layout person keys found on one node (SCAN, never KEYS).
    async fn migrate_people(&self, mut node: Conn) -> Result<u64, StoreError> {
        let mut cursor: u64 = 0;
        let mut moved = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(layout::LEGACY_PERSON_PATTERN)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut node)
                .await
                .map_err(unavailable)?;
            for old in &keys {
                if let Some((person, suffix)) = layout::legacy_person_key(old) {
                    moved += self.migrate_person_key(old, &person, suffix).await?;
                }
            }
            if next == 0 {
                return Ok(moved);
            }
            cursor = next;
        }
    }

    /// One old key to its new name (DUMP, PTTL, RESTORE, DEL: the two names
    /// are in different slots). An account's `mn`/`rsv` go to its bucket.
    async fn migrate_person_key(
        &self,
        old: &str,
        person: &PeselKey,
        suffix: &str,
    ) -> Result<u64, StoreError> {
        let new = Self::key(person, suffix);
        if suffix == "acct" {
            let old_key = old.to_owned();
            let (mn, rsv): (Option<String>, Option<String>) = self
                .run(|mut c| async move {
                    ::redis::cmd("HMGET")
                        .arg(old_key)
                        .arg("mn")
                        .arg("rsv")
                        .query_async(&mut c)
                        .await
                        .map_err(unavailable)
                })
                .await?;
            if let Some(mn) = mn {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&mn, &mut hash)
                    .map_err(|_| StoreError::Corrupt("bad maiden-name hash".into()))?;
                let mut maiden_tag = [0u8; 8];
                // The tag is the hash's prefix, so no pepper is needed here.
                maiden_tag.copy_from_slice(&hash[..8]);
                self.upsert_registry(&[RegistryRecord {
                    key: *person,
                    maiden_tag,
                    reserved: rsv.as_deref() == Some("1"),
                }])
                .await?;
            }
        }
        let old_key = old.to_owned();
        let (dump, ttl): (Option<Vec<u8>>, i64) = self
            .run(|mut c| async move {
                let dump: Option<Vec<u8>> = ::redis::cmd("DUMP")
                    .arg(&old_key)
                    .query_async(&mut c)
                    .await
                    .map_err(unavailable)?;
                let ttl: i64 = ::redis::cmd("PTTL")
                    .arg(&old_key)
                    .query_async(&mut c)
                    .await
                    .map_err(unavailable)?;
                Ok((dump, ttl))
            })
            .await?;
        let Some(dump) = dump else {
            return Ok(0); // gone meanwhile (expired, or moved by another replica)
        };
        if ttl == -2 {
            return Ok(0);
        }
        let (old_key, is_acct) = (old.to_owned(), suffix == "acct");
        self.run(|mut c| async move {
            let restored: Result<(), _> = ::redis::cmd("RESTORE")
                .arg(&new)
                .arg(ttl.max(0))
                .arg(dump)
                .query_async(&mut c)
                .await;
            match restored {
                Ok(()) => {}
                // Already under the new name: the newer copy wins.
                Err(e) if e.to_string().contains("BUSYKEY") => {}
                Err(e) => return Err(unavailable(e)),
            }
            if is_acct {
                ::redis::cmd("HDEL")
                    .arg(&new)
                    .arg("mn")
                    .arg("rsv")
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(unavailable)?;
            }
            ::redis::cmd("DEL")
                .arg(&old_key)
                .query_async::<()>(&mut c)
                .await
                .map_err(unavailable)
        })
        .await?;
        Ok(1)
    }

    /// Runs one store operation with the connection, bounded by the timeout.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let work = async {
            let conn = self.conn().await?;
            f(conn).await
        };
        let result = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| unavailable("timed out"))
            .and_then(|r| r);
        if result.is_err() && matches!(self.topology, Topology::Sentinel(_)) {
            // The master may have changed (failover, READONLY on a demoted
            // node): ask the sentinels again on the next call.
            *self.conn.lock().await = None;
        }
        result
    }

    fn key(k: &PeselKey, suffix: &str) -> String {
        layout::person_key(k, suffix)
    }

    fn session_key(k: &PeselKey, token_hash: &[u8; 32]) -> String {
        Self::key(k, &format!("s:{}", hex::encode(token_hash)))
    }

    fn facts_key(k: &PeselKey, token_hash: &[u8; 32]) -> String {
        Self::key(k, &format!("sf:{}", hex::encode(token_hash)))
    }

    /// `SET key value PX ttl`: a record that expires by itself.
    async fn set_px(&self, key: String, value: &str, ttl: Millis) -> Result<(), StoreError> {
        let value = value.to_owned();
        self.run(|mut c| async move {
            ::redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl.max(1))
                .query_async::<()>(&mut c)
                .await
                .map_err(unavailable)
        })
        .await
    }

    /// A session check that touch_session.lua would answer without a change
    /// (valid, and its expiry would move by less than a step), decided from a
    /// plain read: `TIME` and `HMGET` in one pipeline cost Redis a fraction of a
    /// script call; with `facts`, the session's sealed facts (same hash slot)
    /// come in the same pipeline. `Some((None, _))`: no such session; `None`:
    /// the script must decide (and write, or delete).
    async fn session_unchanged(
        &self,
        skey: &str,
        facts: Option<String>,
        idle: Millis,
    ) -> Result<Option<SessionRead>, StoreError> {
        let test_now = self.clock.as_ref().map(|c| c.now());
        let skey = skey.to_owned();
        let with_facts = facts.is_some();
        let mut pipe = ::redis::pipe();
        if test_now.is_none() {
            pipe.cmd("TIME");
        }
        pipe.cmd("HMGET").arg(skey).arg("fl").arg("we").arg("exp");
        if let Some(f) = facts {
            pipe.cmd("GET").arg(f);
        }
        let replies: Vec<::redis::Value> = self
            .run(|mut c| async move { pipe.query_async(&mut c).await.map_err(unavailable) })
            .await?;
        let mut replies: Vec<::redis::Value> = replies.into_iter().rev().collect();
        let corrupt = |e: ::redis::ParsingError| StoreError::Corrupt(e.to_string());
        let now = match test_now {
            Some(now) => now,
            None => {
                let (secs, micros): (i64, i64) =
                    ::redis::from_redis_value(replies.pop().unwrap_or(::redis::Value::Nil))
                        .map_err(corrupt)?;
                secs * 1000 + micros / 1000
            }
        };
        let fields: (Option<i64>, Option<i64>, Option<i64>) =
            ::redis::from_redis_value(replies.pop().unwrap_or(::redis::Value::Nil))
                .map_err(corrupt)?;
        let sealed: Option<String> = if with_facts {
            ::redis::from_redis_value(replies.pop().unwrap_or(::redis::Value::Nil))
                .map_err(corrupt)?
        } else {
            None
        };
        let (Some(fl), Some(we), Some(exp)) = fields else {
            return Ok(fields.0.is_none().then_some((None, None)));
        };
        let next = (now + idle).min(we);
        let unchanged =
            next > now && exp > now && (0..super::session_step(idle)).contains(&(next - exp));
        Ok(unchanged.then_some((
            Some(SessionRecord {
                first_login_at: fl,
                window_ends_at: we,
                expires_at: exp,
            }),
            sealed,
        )))
    }

    /// touch_session.lua: the session's sliding expiry moved (or it ended), and
    /// its facts' with it.
    async fn touch_script(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
        idle: Millis,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut inv = TOUCH.prepare_invoke();
        inv.key(Self::session_key(key, token_hash))
            .key(Self::facts_key(key, token_hash))
            .arg(self.now_arg())
            .arg(idle);
        let r: Option<(i64, i64, i64)> = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await.map_err(unavailable) })
            .await?;
        Ok(r.map(
            |(first_login_at, window_ends_at, expires_at)| SessionRecord {
                first_login_at,
                window_ends_at,
                expires_at,
            },
        ))
    }

    /// The scripts' first argument: empty (= Redis `TIME`) unless a test clock is set.
    fn now_arg(&self) -> String {
        self.clock
            .as_ref()
            .map(|c| c.now().to_string())
            .unwrap_or_default()
    }

    /// Runs one script, followed by `WAIT` when replicas must acknowledge.
    async fn invoke_waiting<T: ::redis::FromRedisValue + Send>(
        &self,
        inv: ::redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let wait = self.wait;
        self.run(|mut c| async move {
            if wait.0 == 0 {
                return inv.invoke_async(&mut c).await.map_err(unavailable);
            }
            invoke_and_wait(&mut c, &inv, wait).await
        })
        .await
    }

    /// Runs one script invocation per item, atomically each: one pipeline on
    /// a single node; on a cluster, where a pipeline must stay in one slot,
    /// as separate calls in flight together.
    async fn invoke_each<T: ::redis::FromRedisValue + Send + 'static>(
        &self,
        invocations: Vec<::redis::ScriptInvocation<'static>>,
    ) -> Result<Vec<T>, StoreError> {
        if invocations.is_empty() {
            return Ok(Vec::new());
        }
        if matches!(self.topology, Topology::Cluster(_)) {
            return self
                .run(|c| async move {
                    futures::future::try_join_all(invocations.iter().map(|inv| {
                        let mut c = c.clone();
                        async move { inv.invoke_async::<T>(&mut c).await }
                    }))
                    .await
                    .map_err(unavailable)
                })
                .await;
        }
        self.run(|mut c| async move {
            for attempt in 0..2 {
                let mut pipe = ::redis::pipe();
                for inv in &invocations {
                    pipe.invoke_script(inv);
                }
                match pipe.query_async::<Vec<T>>(&mut c).await {
                    Ok(r) => return Ok(r),
                    Err(e) if attempt == 0 && is_noscript(&e) => {
                        invocations[0]
                            .load_async(&mut c)
                            .await
                            .map_err(unavailable)?;
                    }
                    Err(e) => return Err(unavailable(e)),
                }
            }
            Err(unavailable("script could not be loaded"))
        })
        .await
    }
}

fn is_noscript(e: &::redis::RedisError) -> bool {
    e.to_string().to_ascii_lowercase().contains("noscript")
}

/// A script and `WAIT` in one round trip: reservations and settlements
/// both, so that after a failover neither a ticket nor its outcome is
/// missing. Pipelines do not reload a script the server has forgotten (e.g. a
/// freshly promoted replica), so on NOSCRIPT it is loaded and the pipeline
/// sent once more.
async fn invoke_and_wait<T: ::redis::FromRedisValue>(
    conn: &mut Conn,
    inv: &::redis::ScriptInvocation<'_>,
    (replicas, timeout_ms): (u32, u64),
) -> Result<T, StoreError> {
    for attempt in 0..2 {
        let mut pipe = ::redis::pipe();
        pipe.invoke_script(inv)
            .cmd("WAIT")
            .arg(replicas)
            .arg(timeout_ms);
        match pipe.query_async::<(T, i64)>(conn).await {
            Ok((reply, acked)) if acked >= i64::from(replicas) => return Ok(reply),
            Ok((_, acked)) => {
                return Err(unavailable(format!(
                    "written but acknowledged by {acked} of {replicas} replicas"
                )));
            }
            Err(e) if attempt == 0 && is_noscript(&e) => {
                inv.load_async(conn).await.map_err(unavailable)?;
            }
            Err(e) => return Err(unavailable(e)),
        }
    }
    Err(unavailable("script could not be loaded"))
}

fn policy_args(inv: &mut ::redis::ScriptInvocation<'_>, p: &LockoutPolicy) {
    inv.arg(p.max_failures)
        .arg(p.base_block)
        .arg(p.multiplier)
        .arg(p.max_block)
        .arg(p.forget_after)
        .arg(p.reservation_ttl)
        .arg(CONTENDED_RETRY);
}

fn opt_millis(s: &str) -> Result<Option<Millis>, StoreError> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| StoreError::Corrupt("bad timestamp".into()))
}

fn parse_account(
    registry: &[u8],
    pw: &str,
    fl: &str,
    generation: &str,
) -> Result<AccountRecord, StoreError> {
    let entry = if registry.is_empty() {
        None
    } else {
        Some(
            RegistryEntry::decode(registry)
                .ok_or_else(|| StoreError::Corrupt("bad registry entry".into()))?,
        )
    };
    Ok(AccountRecord {
        maiden_tag: entry.map(|e| e.maiden),
        reserved: entry.is_some_and(|e| e.reserved),
        password_phc: (!pw.is_empty()).then(|| pw.to_owned()),
        first_login_at: opt_millis(fl)?,
        generation: if generation.is_empty() {
            0
        } else {
            generation
                .parse()
                .map_err(|_| StoreError::Corrupt("bad generation".into()))?
        },
    })
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        match self.topology {
            Topology::Single => "redis",
            Topology::Cluster(_) => "redis-cluster",
            Topology::Sentinel(_) => "redis-sentinel",
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut c| async move {
            let pong: String = ::redis::cmd("PING")
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(StoreError::Corrupt(pong))
            }
        })
        .await
    }

    async fn begin_attempt(
        &self,
        key: &PeselKey,
        ticket: &str,
        policy: &LockoutPolicy,
    ) -> Result<Begun, StoreError> {
        let mut inv = BEGIN.prepare_invoke();
        inv.key(Self::key(key, "lock"))
            .key(Self::key(key, "pend"))
            .key(Self::key(key, "acct"))
            .key(layout::registry_bucket0(key))
            .arg(self.now_arg());
        policy_args(&mut inv, policy);
        inv.arg(ticket).arg(&layout::registry_field(key)[..]);
        type Reply = (String, i64, Vec<u8>, String, String, String, i64);
        let (status, t, registry, pw, fl, generation, now): Reply =
            self.invoke_waiting(inv).await?;
        let outcome = match status.as_str() {
            "allowed" => Begin::Allowed {
                account: parse_account(&registry, &pw, &fl, &generation)?,
            },
            "locked" => Begin::Locked { until: t },
            "contended" => Begin::Contended { retry_at: t },
            other => return Err(StoreError::Corrupt(format!("begin status {other}"))),
        };
        Ok(Begun { now, outcome })
    }

    async fn settle_attempt(
        &self,
        key: &PeselKey,
        ticket: &str,
        policy: &LockoutPolicy,
        settle: Settle,
    ) -> Result<Settled, StoreError> {
        let (outcome, mode, phc, session, generation) = match &settle {
            Settle::Success {
                generation,
                password,
                session,
            } => {
                let (mode, phc) = match password {
                    PasswordWrite::Keep => ("", ""),
                    PasswordWrite::Define(p) => ("D", p.as_str()),
                    PasswordWrite::Rehash(p) => ("R", p.as_str()),
                };
                ("S", mode, phc, session.as_ref(), *generation)
            }
            Settle::Failure => ("F", "", "", None, 0),
            Settle::Neutral => ("N", "", "", None, 0),
        };
        let token = session.map_or([0u8; 32], |s| s.token_hash);
        let mut inv = SETTLE.prepare_invoke();
        inv.key(Self::key(key, "lock"))
            .key(Self::key(key, "pend"))
            .key(Self::key(key, "acct"))
            .key(Self::key(key, "ss"))
            .key(Self::session_key(key, &token))
            .key(Self::facts_key(key, &token))
            .arg(self.now_arg());
        policy_args(&mut inv, policy);
        inv.arg(ticket)
            .arg(outcome)
            .arg(mode)
            .arg(phc)
            .arg(if session.is_some() { "1" } else { "0" })
            .arg(hex::encode(token))
            .arg(session.map_or(0, |s| s.idle))
            .arg(session.map_or(0, |s| s.window))
            .arg(session.and_then(|s| s.closes_at).unwrap_or(-1))
            .arg(generation)
            .arg(session.map_or("", |s| s.facts.as_str()));
        let r: Vec<i64> = self.invoke_waiting(inv).await?;
        let [
            level,
            until,
            already,
            first_login,
            window_end,
            expires,
            superseded,
            now,
        ] = r[..]
        else {
            return Err(StoreError::Corrupt("settle reply".into()));
        };
        let success = outcome == "S" && already == 0 && superseded == 0;
        Ok(Settled {
            now,
            lock_started: (level > 0).then_some(crate::domain::lockout::LockStarted {
                level: level as u32,
                until,
            }),
            already_defined: already == 1,
            superseded: superseded == 1,
            first_login_at: success.then_some(first_login),
            window_ends_at: (success && session.is_some()).then_some(window_end),
            session: (expires > 0).then_some(SessionRecord {
                first_login_at: first_login,
                window_ends_at: window_end,
                expires_at: expires,
            }),
        })
    }

    async fn touch_session(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
        idle: Millis,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let skey = Self::session_key(key, token_hash);
        if let Some((known, _)) = self.session_unchanged(&skey, None, idle).await? {
            return Ok(known);
        }
        self.touch_script(key, token_hash, idle).await
    }

    async fn touch_session_with_facts(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
        idle: Millis,
    ) -> Result<Option<(SessionRecord, Option<String>)>, StoreError> {
        let skey = Self::session_key(key, token_hash);
        let fkey = Self::facts_key(key, token_hash);
        if let Some((known, facts)) = self.session_unchanged(&skey, Some(fkey), idle).await? {
            return Ok(known.map(|record| (record, facts)));
        }
        let Some(record) = self.touch_script(key, token_hash, idle).await? else {
            return Ok(None);
        };
        Ok(Some((record, self.session_facts(key, token_hash).await?)))
    }

    async fn delete_session(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        // A script rather than MULTI: transactions are not routed on Redis Cluster.
        let mut inv = DELETE_SESSION.prepare_invoke();
        inv.key(Self::session_key(key, token_hash))
            .key(Self::key(key, "ss"))
            .key(Self::facts_key(key, token_hash))
            .arg(hex::encode(token_hash));
        self.run(|mut c| async move { inv.invoke_async::<()>(&mut c).await.map_err(unavailable) })
            .await
    }

    async fn locked_until(&self, key: &PeselKey) -> Result<Option<LockedUntil>, StoreError> {
        let mut inv = LOCKED_UNTIL.prepare_invoke();
        inv.key(Self::key(key, "lock")).arg(self.now_arg());
        let (until, now): (i64, i64) = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await.map_err(unavailable) })
            .await?;
        Ok((until > 0).then_some(LockedUntil { until, now }))
    }

    async fn account_status(&self, key: &PeselKey) -> Result<AccountStatus, StoreError> {
        let mut inv = ACCOUNT_STATUS.prepare_invoke();
        inv.key(Self::key(key, "acct"))
            .key(Self::key(key, "lock"))
            .key(Self::key(key, "pend"))
            .key(layout::registry_bucket0(key))
            .arg(self.now_arg())
            .arg(&layout::registry_field(key)[..]);
        let r: Vec<Vec<u8>> = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await.map_err(unavailable) })
            .await?;
        let corrupt = || StoreError::Corrupt("account status reply".into());
        let (fixed, pending) = r.split_at_checked(9).ok_or_else(corrupt)?;
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| corrupt());
        let num = |b: &[u8]| text(b)?.parse::<i64>().map_err(|_| corrupt());
        Ok(AccountStatus {
            account: parse_account(
                &fixed[0],
                &text(&fixed[1])?,
                &text(&fixed[2])?,
                &text(&fixed[3])?,
            )?,
            lock: LockState {
                failures: num(&fixed[4])? as u32,
                level: num(&fixed[5])? as u32,
                locked_until: num(&fixed[6])?,
                last_failure: num(&fixed[7])?,
                pending: pending
                    .chunks_exact(2)
                    .map(|p| Ok((text(&p[0])?, num(&p[1])?)))
                    .collect::<Result<_, StoreError>>()?,
            },
            now: num(&fixed[8])?,
        })
    }

    async fn unlock(&self, key: &PeselKey) -> Result<(), StoreError> {
        let lock = Self::key(key, "lock");
        self.run(|mut c| async move {
            ::redis::cmd("DEL")
                .arg(lock)
                .query_async::<()>(&mut c)
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn reset_account(&self, key: &PeselKey) -> Result<bool, StoreError> {
        let mut inv = RESET.prepare_invoke();
        inv.key(Self::key(key, "acct"))
            .key(Self::key(key, "ss"))
            .arg(Self::key(key, "s:"))
            .arg(Self::key(key, "sf:"));
        let had: i64 = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await.map_err(unavailable) })
            .await?;
        Ok(had == 1)
    }

    async fn upsert_registry(&self, rows: &[RegistryRecord]) -> Result<RegistryCounts, StoreError> {
        let invocation = |group: &[&RegistryRecord]| {
            let mut inv = REGISTRY_UPSERT.prepare_invoke();
            inv.key(layout::registry_bucket0(&group[0].key));
            for row in group {
                let entry = RegistryEntry {
                    maiden: row.maiden_tag,
                    reserved: row.reserved,
                };
                inv.arg(layout::registry_prefix(&row.key))
                    .arg(&layout::registry_field(&row.key)[..])
                    .arg(&entry.encode()[..]);
            }
            inv
        };
        let invocations: Vec<_> = if matches!(self.topology, Topology::Cluster(_)) {
            // A script may only touch keys of one slot: one call per slot.
            let mut by_slot: std::collections::BTreeMap<u16, Vec<&RegistryRecord>> =
                std::collections::BTreeMap::new();
            for row in rows {
                let slot = layout::tag_slot(&row.key);
                by_slot.entry(slot).or_default().push(row);
            }
            by_slot.values().map(|g| invocation(g)).collect()
        } else {
            // Scripts of 1,000 rows: long enough to amortise the call,
            // short enough (a few ms) not to hold up logins for long.
            rows.chunks(1000)
                .map(|c| invocation(&c.iter().collect::<Vec<_>>()))
                .collect()
        };
        let replies: Vec<(u64, u64, u64)> = self.invoke_each(invocations).await?;
        let mut counts = RegistryCounts::default();
        for (imported, updated, unchanged) in replies {
            counts += RegistryCounts {
                imported,
                updated,
                unchanged,
            };
        }
        Ok(counts)
    }

    async fn add_no_pesel_request(
        &self,
        request: &StoredNoPeselRequest,
        expire_at: Option<Millis>,
    ) -> Result<bool, StoreError> {
        let json =
            serde_json::to_string(request).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut inv = NOPESEL_ADD.prepare_invoke();
        inv.key(NO_PESEL_SEQ)
            .key(NO_PESEL_ALL)
            .key(NO_PESEL_OPEN)
            .key(NO_PESEL_REQ)
            .arg(&request.reference)
            .arg(json)
            .arg(expire_at.map(|t| t.to_string()).unwrap_or_default());
        let seq: i64 = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await.map_err(unavailable) })
            .await?;
        Ok(seq > 0)
    }

    async fn list_no_pesel_requests(
        &self,
        query: &NoPeselQuery,
    ) -> Result<NoPeselPage, StoreError> {
        let mut inv = NOPESEL_LIST.prepare_invoke();
        inv.key(if query.include_handled {
            NO_PESEL_ALL
        } else {
            NO_PESEL_OPEN
        })
        .key(NO_PESEL_OPEN)
        .key(NO_PESEL_REQ)
        .arg(query.before.map_or("+inf".to_owned(), |b| format!("({b}")))
        .arg(query.limit);
        let raw: Vec<String> = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await.map_err(unavailable) })
            .await?;
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
        let mut page = NoPeselPage::default();
        let mut last = None;
        for triple in raw.chunks_exact(3) {
            let seq: u64 = triple[0].parse().map_err(|e| corrupt(&e))?;
            if page.requests.len() == query.limit {
                // More to come: continue below the last one listed.
                page.next = last;
                break;
            }
            last = Some(seq);
            let mut request: StoredNoPeselRequest =
                serde_json::from_str(&triple[1]).map_err(|e| corrupt(&e))?;
            request.handled = triple[2] == "1";
            page.requests.push(request);
        }
        Ok(page)
    }

    async fn mark_no_pesel_handled(&self, reference: &str) -> Result<bool, StoreError> {
        let mut inv = NOPESEL_HANDLED.prepare_invoke();
        inv.key(NO_PESEL_OPEN).key(NO_PESEL_REQ).arg(reference);
        let found: i64 = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await.map_err(unavailable) })
            .await?;
        Ok(found == 1)
    }

    async fn take_rate_tokens(
        &self,
        takes: &[RateTake],
        policy: &RatePolicy,
    ) -> Result<Vec<RateBalance>, StoreError> {
        let now = self.now_arg();
        let invocations = takes
            .iter()
            .map(|t| {
                let mut inv = RATE_TAKE.prepare_invoke();
                inv.key(format!("census:rl:{{{}}}", hex::encode(t.client)))
                    .arg(&now)
                    .arg(policy.per_minute)
                    .arg(policy.burst)
                    .arg(t.taken);
                inv
            })
            .collect();
        let replies: Vec<(i64, i64)> = self.invoke_each(invocations).await?;
        Ok(replies
            .into_iter()
            .map(|(milli_tokens, now)| RateBalance { milli_tokens, now })
            .collect())
    }

    /// Moves data of older layouts: the no-PESEL list into `{nopesel}`, and
    /// person keys `census:{<32 hex>}:…` to `census:{t}:<r>:…` with their
    /// registry fields into the buckets. Safe to run on several replicas at
    /// once and to interrupt: every key is copied before its old name goes,
    /// and a copy never overwrites a key already under the new name.
    async fn migrate(&self) -> Result<u64, StoreError> {
        let moved = self.migrate_no_pesel().await?;
        let mut people = 0;
        for conn in self.masters().await? {
            people += self.migrate_people(conn).await?;
        }
        if people > 0 {
            tracing::info!(keys = people, "person keys moved to the bucketed layout");
        }
        Ok(moved + people)
    }

    async fn purge(&self, progress: &PurgeProgress<'_>) -> Result<u64, StoreError> {
        let masters = self.masters().await?;
        let mut estimate = 0;
        for conn in &masters {
            let mut c = conn.clone();
            let size: u64 = ::redis::cmd("DBSIZE")
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            estimate += size;
        }
        let mut total = 0;
        for conn in masters {
            total = purge_node(conn, total, estimate, progress).await?;
        }
        Ok(total)
    }

    async fn session_facts(
        &self,
        key: &PeselKey,
        session_hash: &[u8; 32],
    ) -> Result<Option<String>, StoreError> {
        let k = Self::facts_key(key, session_hash);
        self.run(|mut c| async move {
            ::redis::cmd("GET")
                .arg(k)
                .query_async(&mut c)
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn put_authorization_request(
        &self,
        id_hash: &[u8; 32],
        request: &str,
        ttl: Millis,
    ) -> Result<(), StoreError> {
        self.set_px(authz_request_key(id_hash), request, ttl).await
    }

    async fn authorization_request(
        &self,
        id_hash: &[u8; 32],
        take: bool,
    ) -> Result<Option<String>, StoreError> {
        let k = authz_request_key(id_hash);
        self.run(|mut c| async move {
            ::redis::cmd(if take { "GETDEL" } else { "GET" })
                .arg(k)
                .query_async(&mut c)
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn put_grant(
        &self,
        key: &PeselKey,
        kind: GrantKind,
        grant_hash: &[u8; 32],
        session_hash: &[u8; 32],
        sealed: &str,
        ttl: Millis,
    ) -> Result<(), StoreError> {
        let mut inv = PUT_GRANT.prepare_invoke();
        inv.key(Self::key(key, &grant_suffix(kind, grant_hash)))
            .key(Self::key(key, "acct"))
            .arg(sealed)
            .arg(hex::encode(session_hash))
            .arg(ttl.max(1));
        self.run(|mut c| async move { inv.invoke_async::<()>(&mut c).await.map_err(unavailable) })
            .await
    }

    async fn use_grant(
        &self,
        key: &PeselKey,
        kind: GrantKind,
        grant_hash: &[u8; 32],
    ) -> Result<GrantLookup, StoreError> {
        let mut inv = USE_GRANT.prepare_invoke();
        inv.key(Self::key(key, &grant_suffix(kind, grant_hash)))
            .key(Self::key(key, "acct"))
            .arg(Self::key(key, "s:"))
            .arg(if kind == GrantKind::Code { "1" } else { "0" });
        let (status, sealed): (String, String) = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await.map_err(unavailable) })
            .await?;
        match status.as_str() {
            "found" => Ok(GrantLookup::Found(sealed)),
            "unknown" => Ok(GrantLookup::Unknown),
            "session" => Ok(GrantLookup::SessionEnded),
            "generation" => Ok(GrantLookup::GenerationMoved),
            other => Err(StoreError::Corrupt(format!("grant status {other}"))),
        }
    }

    async fn put_saml_request(
        &self,
        id_hash: &[u8; 32],
        state: &str,
        ttl: Millis,
    ) -> Result<(), StoreError> {
        self.set_px(saml_request_key(id_hash), state, ttl).await
    }

    async fn take_saml_request(&self, id_hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        let k = saml_request_key(id_hash);
        self.run(|mut c| async move {
            ::redis::cmd("GETDEL")
                .arg(k)
                .query_async(&mut c)
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn claim_saml_assertion(
        &self,
        id_hash: &[u8; 32],
        ttl: Millis,
    ) -> Result<bool, StoreError> {
        let k = saml_assertion_key(id_hash);
        let set: Option<String> = self
            .run(|mut c| async move {
                ::redis::cmd("SET")
                    .arg(k)
                    .arg("1")
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.max(1))
                    .query_async(&mut c)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        Ok(set.is_some())
    }

    async fn open_node_session(
        &self,
        key: &PeselKey,
        spec: &SessionSpec,
    ) -> Result<NodeSession, StoreError> {
        let mut inv = NODE_SESSION.prepare_invoke();
        inv.key(Self::key(key, "acct"))
            .key(Self::key(key, "ss"))
            .key(Self::session_key(key, &spec.token_hash))
            .key(layout::registry_bucket0(key))
            .key(Self::facts_key(key, &spec.token_hash))
            .arg(self.now_arg())
            .arg(hex::encode(spec.token_hash))
            .arg(spec.idle)
            .arg(spec.window)
            .arg(spec.closes_at.unwrap_or(-1))
            .arg(&layout::registry_field(key)[..])
            .arg(&spec.facts);
        let (status, pw, fl, we, exp, now): (String, i64, i64, i64, i64, i64) =
            self.invoke_waiting(inv).await?;
        match status.as_str() {
            "unregistered" => Ok(NodeSession::Unregistered),
            "opened" => Ok(NodeSession::Opened {
                now,
                password_defined: pw == 1,
                session: (exp > 0).then_some(SessionRecord {
                    first_login_at: fl,
                    window_ends_at: we,
                    expires_at: exp,
                }),
            }),
            other => Err(StoreError::Corrupt(format!("node session status {other}"))),
        }
    }

    async fn reclaim_account(
        &self,
        key: &PeselKey,
        generation: u64,
        password_phc: &str,
        keep_session: &[u8; 32],
    ) -> Result<Reclaimed, StoreError> {
        let mut inv = RECLAIM.prepare_invoke();
        inv.key(Self::key(key, "acct"))
            .key(Self::key(key, "ss"))
            .key(Self::key(key, "lock"))
            .arg(generation)
            .arg(password_phc)
            .arg(Self::key(key, "s:"))
            .arg(hex::encode(keep_session))
            .arg(Self::key(key, "sf:"));
        let had: i64 = self.invoke_waiting(inv).await?;
        Ok(match had {
            -1 => Reclaimed::Superseded,
            h => Reclaimed::Done {
                had_password: h == 1,
            },
        })
    }
}

/// Deletes every `census:*` key of one node: SCAN 1,000 at a time and UNLINK
/// them (freed in the background), one key per command so that keys of
/// different slots never share one; each batch is one pipeline, so Redis is
/// never busy for more than a batch. Returns the running total.
async fn purge_node<C: ConnectionLike + Clone + Send>(
    mut conn: C,
    mut total: u64,
    estimate: u64,
    progress: &PurgeProgress<'_>,
) -> Result<u64, StoreError> {
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("census:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if !keys.is_empty() {
            let mut pipe = ::redis::pipe();
            for k in &keys {
                pipe.cmd("UNLINK").arg(k).ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
            total += keys.len() as u64;
            progress(total, estimate.max(total));
        }
        if next == 0 {
            return Ok(total);
        }
        cursor = next;
    }
}
