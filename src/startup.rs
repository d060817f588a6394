//! `Application::build(settings)`: the one way to assemble the service, used
//! by `main` and by every integration test. It binds both listeners (port 0
//! works: the real ports are read back), wires the store, hashing pool and
//! state, and starts the background tasks (registry seeding, store pinger,
//! the rate limiter's reporter).

use crate::auth::hasher::{Argon2Config, HashPool};
use crate::auth::{AuthParts, AuthService, AuthSettings};
use crate::clock::{self, Clock, duration_millis as ms, from_datetime};
use crate::config::{Backend, Settings};
use crate::domain::LockoutPolicy;
use crate::domain::window::CensusPeriod;
use crate::http::problem::TextParams;
use crate::http::{self, AppState, Readiness, admin, middleware, public, routes, web_assets};
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::rate_limit::SharedRateLimiter;
use crate::registry;
use crate::store::Store;
use crate::store::instrumented::Instrumented;
use crate::store::memory::MemoryStore;
use crate::store::redis::{RedisOptions, RedisStore};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, guard, web};
use secrecy::{ExposeSecret, SecretString};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("password hashing: {0}")]
    Hash(#[from] crate::auth::hasher::HashError),
    #[error("OpenID Connect: {0}")]
    Oidc(String),
    #[error("configuration: key `secrets.admin_tokens_file`: {0}")]
    AdminTokens(String),
    #[error("registry seed file {path}: {reason}")]
    Seed { path: String, reason: String },
    #[error("login.gov.pl: {0}")]
    Saml(String),
}

/// Which clocks decide. Production: the wall clock for the service, and the
/// store's own time (Redis `TIME`; the memory store reads `service`).
#[derive(Clone)]
pub struct Clocks {
    pub service: Arc<dyn Clock>,
    /// Tests only: Redis takes its time from `service` too, so a test can
    /// move time on every store by moving one manual clock.
    pub redis_follows_service: bool,
}

impl Default for Clocks {
    fn default() -> Self {
        Self {
            service: clock::system(),
            redis_follows_service: false,
        }
    }
}

/// The admin listener's CSP: it serves no page.
const ADMIN_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

pub struct Application {
    public_port: u16,
    admin_port: u16,
    public: Server,
    admin: Server,
    state: web::Data<AppState>,
}

/// GET, and HEAD for uptime monitors and caches (actix sends the headers of
/// the GET answer without its body).
fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// How long workers get to take connections the accept thread already handed them.
const HANDOFF: Duration = Duration::from_millis(100);

/// Stops a running application gracefully, as SIGTERM does.
#[derive(Clone)]
pub struct ShutdownHandle {
    public: ServerHandle,
    admin: ServerHandle,
    readiness: Arc<Readiness>,
    delay: Duration,
}

impl ShutdownHandle {
    /// Readiness turns 503 at once; after `server.shutdown_delay` the public
    /// listener stops accepting and in-flight requests get `shutdown_grace` to finish.
    pub async fn shutdown(&self) {
        self.readiness.shutting_down.store(true, Ordering::Release);
        tracing::info!(event = "shutdown_started", "not ready; draining");
        tokio::time::sleep(self.delay).await;
        // actix drops connections still queued for a worker when a graceful stop
        // begins; pausing first lets the workers take the ones already accepted.
        // Connections still in the kernel's backlog at the stop are reset by the
        // kernel: keeping traffic away by then is what the delay above is for.
        self.public.pause().await;
        tokio::time::sleep(HANDOFF).await;
        self.public.stop(true).await;
        self.admin.stop(true).await;
    }
}

/// Builds the store of `store.backend`, with metrics around every call.
pub fn build_store(
    settings: &Settings,
    metrics: Arc<Metrics>,
    clocks: &Clocks,
) -> Result<Arc<dyn Store>, StartupError> {
    let inner: Arc<dyn Store> = match settings.backend() {
        Backend::Memory => Arc::new(MemoryStore::with_clock(clocks.service.clone())),
        Backend::Redis => RedisStore::with_options(
            &settings.store.redis_url,
            RedisOptions {
                timeout: settings.store.timeout,
                wait_replicas: settings.store.wait_replicas,
                wait_timeout: settings.store.wait_timeout,
                password: settings.secrets.redis_password.clone(),
                sentinel_password: settings.secrets.redis_sentinel_password.clone(),
                clock: clocks.redis_follows_service.then(|| clocks.service.clone()),
            },
        )?,
    };
    Ok(Arc::new(Instrumented::new(inner, metrics)))
}

/// The pepper, or for the memory backend a random one (with a warning: every
/// restart then forgets all passwords anyway).
pub fn pepper(settings: &Settings) -> SecretString {
    settings.secrets.pepper.clone().unwrap_or_else(|| {
        tracing::warn!("secrets.pepper is not set: using a random pepper (memory store only)");
        SecretString::from(crate::auth::session::random_hex(32))
    })
}

/// The start-up seed: what to import, checked at start-up (a missing file
/// stops it) and streamed into the store in the background by the same
/// import as `census-login registry import`.
pub struct Seed {
    source: Option<(String, Option<String>)>,
    keys: Arc<Keys>,
    today: time::Date,
}

impl Seed {
    fn new(settings: &Settings, keys: Arc<Keys>, today: time::Date) -> Result<Self, StartupError> {
        let source = match settings.registry.seed_file.as_deref() {
            None => Some(("(bundled demo registry)".to_owned(), None)),
            Some("") => None,
            Some(path) => {
                std::fs::File::open(path).map_err(|e| StartupError::Seed {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
                Some((path.to_owned(), Some(path.to_owned())))
            }
        };
        Ok(Self {
            source,
            keys,
            today,
        })
    }

    /// Imports the seed (again: it is idempotent).
    async fn load(&self, store: Arc<dyn Store>) -> Result<(), String> {
        let Some((name, path)) = &self.source else {
            return Ok(());
        };
        let input: Box<dyn std::io::Read + Send> = match path {
            None => Box::new(std::io::Cursor::new(registry::DEMO_REGISTRY.as_bytes())),
            Some(p) => Box::new(std::fs::File::open(p).map_err(|e| format!("{p}: {e}"))?),
        };
        let report = registry::import(input, self.today, self.keys.clone(), store, |_| {})
            .await
            .map_err(|e| e.to_string())?;
        for b in &report.bad {
            tracing::warn!(file = %name, line = b.line, reason = %b.reason, "registry row skipped");
        }
        tracing::info!(
            imported = report.counts.imported,
            updated = report.counts.updated,
            unchanged = report.counts.unchanged,
            rejected = report.rejected,
            "registry seed loaded"
        );
        Ok(())
    }
}

/// The flows over `store` and `keys`, with the hashing pool as configured.
pub fn build_auth(
    settings: &Settings,
    metrics: Arc<Metrics>,
    clocks: &Clocks,
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
) -> Result<AuthService, StartupError> {
    let p = &settings.password;
    let hasher = HashPool::new(
        keys.argon2_secret(),
        argon2_config(settings),
        p.hash_slots(),
        p.hash_queue(),
        p.hash_thread_nice,
        metrics.clone(),
    )?;
    Ok(AuthService::new(AuthParts {
        store,
        keys,
        hasher,
        metrics,
        settings: auth_settings(settings),
        clock: clocks.service.clone(),
    }))
}

/// The flows for the helpline's command line (unlock): no hashing threads.
pub fn build_helpline(
    settings: &Settings,
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
) -> AuthService {
    AuthService::new(AuthParts {
        store,
        keys,
        hasher: HashPool::disabled(argon2_config(settings)),
        metrics,
        settings: auth_settings(settings),
        clock: Clocks::default().service,
    })
}

fn argon2_config(settings: &Settings) -> Argon2Config {
    let p = &settings.password;
    Argon2Config {
        memory_kib: p.argon2_memory_kib,
        iterations: p.argon2_iterations,
        parallelism: p.argon2_parallelism,
    }
}

fn auth_settings(settings: &Settings) -> AuthSettings {
    let l = &settings.lockout;
    let closes_at = settings.census.closes_at.map(from_datetime);
    AuthSettings {
        lockout: LockoutPolicy::new(
            l.max_failures,
            l.base_block,
            l.multiplier,
            l.max_block,
            l.forget_after,
            l.reservation_ttl,
        ),
        period: CensusPeriod {
            opens_at: settings.census.opens_at.map(from_datetime),
            closes_at,
        },
        window: ms(settings.survey.window),
        idle: ms(settings.session.idle_timeout),
        min_password_length: settings.password.min_length,
        refuse_reserved: settings.registry.refuse_reserved,
        retain_until: crate::auth::admin::retain_until(closes_at, ms(settings.census.retention)),
        shed_delay: settings.password.shed_delay,
        // Checked at start-up when enabled; the strictest level otherwise.
        node_min_loa: crate::domain::Loa::parse(&settings.national_node.min_loa)
            .unwrap_or(crate::domain::Loa::High),
        node_request_ttl: ms(settings.national_node.request_ttl),
    }
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clocks(settings, Clocks::default()).await
    }

    /// As [`build`](Self::build), with the clocks a test controls.
    pub async fn build_with_clocks(
        settings: Settings,
        clocks: Clocks,
    ) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let metrics = Arc::new(Metrics::new(
            option_env!("CENSUS_GIT_COMMIT").unwrap_or("unknown"),
        ));
        let store = build_store(&settings, metrics.clone(), &clocks)?;
        let keys = Arc::new(Keys::from_pepper(&pepper(&settings)));
        let auth = build_auth(
            &settings,
            metrics.clone(),
            &clocks,
            store.clone(),
            keys.clone(),
        )?;
        let oidc = Arc::new(
            crate::oidc::Provider::new(&settings, auth.clone(), metrics.clone())
                .map_err(StartupError::Oidc)?,
        );
        let seed = Seed::new(&settings, keys.clone(), clocks.service.poland_today())?;
        let rl = &settings.rate_limit;
        let limiter = SharedRateLimiter::new(
            crate::domain::rate_limit::RatePolicy {
                per_minute: rl.per_ip_per_minute,
                burst: rl.burst,
            },
            rl.ipv4_prefix,
            rl.ipv6_prefix,
            keys,
            clocks.service.clone(),
        );
        limiter.spawn_reporter(store.clone());
        let readiness = Arc::new(Readiness::default());
        let admin_tokens = crate::admin_tokens::AdminTokens::new(
            settings
                .secrets
                .admin_token
                .as_ref()
                .map(|t| t.expose_secret()),
            settings.secrets.admin_tokens_file.as_deref(),
        )
        .map_err(StartupError::AdminTokens)?;
        let saml = national_node(&settings)?;
        let state = web::Data::new(AppState {
            auth,
            metrics,
            texts: Arc::new(TextParams::from_settings(&settings)),
            settings: settings.clone(),
            meta: public::meta_json(&settings),
            limiter,
            readiness: readiness.clone(),
            oidc,
            admin_tokens: Arc::new(admin_tokens),
            saml,
        });

        let bind = |what: &'static str, addr: std::net::SocketAddr| {
            TcpListener::bind(addr).map_err(|source| StartupError::Bind {
                what,
                addr: addr.to_string(),
                source,
            })
        };
        let public_listener = bind("server.listen", settings.server.listen)?;
        let admin_listener = bind("server.admin_listen", settings.server.admin_listen)?;
        let public_port = public_listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let admin_port = admin_listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let grace = settings.server.shutdown_grace.as_secs().max(1);

        let secure = settings.session.cookie_secure;
        let public_state = state.clone();
        let public = HttpServer::new(move || {
            App::new()
                .app_data(public_state.clone())
                .app_data(http::json_config())
                .service(
                    web::scope("/api/v1")
                        .wrap(from_fn(middleware::check_origin))
                        .wrap(DefaultHeaders::new().add(("Cache-Control", "no-store")))
                        .configure(|cfg| routes::register(cfg, "/api/v1", &routes::api()))
                        .default_service(web::to(http::not_found)),
                )
                // The OpenID Connect provider: form posts and navigations from
                // relying parties, so outside /api/v1 and its JSON-only rules.
                .configure(|cfg| routes::register(cfg, "", &routes::discovery()))
                .service(
                    web::scope(crate::oidc::COOKIE_PATH)
                        .app_data(web::PayloadConfig::new(16 * 1024))
                        // `/authorize` is limited per IP like the credential
                        // endpoints: without a session each request stores a
                        // waiting request.
                        .configure(|cfg| {
                            routes::register(cfg, crate::oidc::COOKIE_PATH, &routes::oidc())
                        })
                        .default_service(web::to(http::not_found)),
                )
                // login.gov.pl: the node's cross-site form posts (256 KiB).
                .service(
                    web::scope("/saml")
                        .app_data(web::PayloadConfig::new(256 * 1024))
                        .wrap(DefaultHeaders::new().add(("Cache-Control", "no-store")))
                        .configure(|cfg| routes::register(cfg, "/saml", &routes::saml()))
                        .default_service(web::to(http::not_found)),
                )
                .route("/", get_or_head().to(web_assets::index))
                .route("/assets/{path:.*}", get_or_head().to(web_assets::asset))
                .default_service(web::to(http::not_found))
                .wrap(from_fn(middleware::ensure_problem))
                .wrap(middleware::security_headers(CSP, secure))
                .wrap(from_fn(middleware::observe))
        })
        .listen(public_listener)
        .map_err(|source| StartupError::Bind {
            what: "server.listen",
            addr: settings.server.listen.to_string(),
            source,
        })?
        .disable_signals()
        .shutdown_timeout(grace)
        // Longer than load balancers' idle timeouts (60 s typical), so the
        // server never closes a connection a proxy is about to reuse.
        .keep_alive(Duration::from_secs(75))
        .run();

        let admin_state = state.clone();
        let admin = HttpServer::new(move || {
            App::new()
                .app_data(admin_state.clone())
                .configure(|cfg| routes::register(cfg, "", &routes::ops()))
                .service(
                    web::scope("/admin/v1")
                        .wrap(from_fn(admin::require_token))
                        .configure(|cfg| routes::register(cfg, "/admin/v1", &routes::admin())),
                )
                .default_service(web::to(http::not_found))
                .wrap(from_fn(middleware::ensure_problem))
                .wrap(DefaultHeaders::new().add(("Cache-Control", "no-store")))
                .wrap(middleware::security_headers(ADMIN_CSP, secure))
                .wrap(from_fn(middleware::observe))
        })
        .workers(1)
        .listen(admin_listener)
        .map_err(|source| StartupError::Bind {
            what: "server.admin_listen",
            addr: settings.server.admin_listen.to_string(),
            source,
        })?
        .disable_signals()
        .shutdown_timeout(grace)
        .run();

        spawn_background(&state, store, seed);
        Ok(Self {
            public_port,
            admin_port,
            public,
            admin,
            state,
        })
    }

    pub fn public_port(&self) -> u16 {
        self.public_port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn auth(&self) -> &AuthService {
        &self.state.auth
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            public: self.public.handle(),
            admin: self.admin.handle(),
            readiness: self.state.readiness.clone(),
            delay: self.state.settings.server.shutdown_delay,
        }
    }

    /// Serves until both listeners have stopped (see [`ShutdownHandle`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (a, b) = tokio::join!(self.public, self.admin);
        a.and(b)
    }
}

/// The login.gov.pl service provider when `national_node.enabled` (the
/// configuration refused `enabled` in a build without the feature).
fn national_node(
    settings: &Settings,
) -> Result<Option<Arc<crate::saml::ServiceProvider>>, StartupError> {
    if !settings.national_node.enabled {
        return Ok(None);
    }
    #[cfg(feature = "national-node")]
    {
        crate::saml::ServiceProvider::from_settings(settings)
            .map(|sp| Some(Arc::new(sp)))
            .map_err(StartupError::Saml)
    }
    #[cfg(not(feature = "national-node"))]
    Err(StartupError::Saml(
        "this build has no SAML support: build with `--features national-node`".into(),
    ))
}

/// Background work of one application; every task ends with the runtime.
fn spawn_background(state: &web::Data<AppState>, store: Arc<dyn Store>, seed: Seed) {
    // Seeding (after moving older data to the current layout) retries until
    // the store answers: the service starts (not ready) while Redis is down.
    let readiness = state.readiness.clone();
    let seed_store = store.clone();
    tokio::spawn(async move {
        loop {
            let loaded = match seed_store.migrate().await {
                Ok(_) => seed.load(seed_store.clone()).await,
                Err(e) => Err(e.to_string()),
            };
            match loaded {
                Ok(()) => {
                    readiness.seeded.store(true, Ordering::Release);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "registry seed not loaded yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    // Keeps `census_store_up` current between readiness probes.
    tokio::spawn(async move {
        loop {
            let _ = store.ping().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}
