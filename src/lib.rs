//! census-login: the login backend of the census's online self-enumeration.
//! See README.md for the map of modules; rules live in [`domain`], flows in
//! [`auth`], storage in [`store`], HTTP in [`http`].

pub mod admin_tokens;
pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod file_watch;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod oidc;
pub mod problem_code;
pub mod rate_limit;
pub mod registry;
pub mod saml;
pub mod startup;
pub mod store;
pub mod telemetry;
