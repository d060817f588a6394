//! API tests against the spawned service, on both stores.

#[path = "../support/mod.rs"]
mod support;

mod helpers;

mod admin;
mod define;
mod limits;
mod login;
mod oidc;
mod openapi;
mod protocol;
mod redis_ops;
// Needs the build with `--features national-node` (tests/all.sh runs it so).
#[cfg(feature = "national-node")]
mod saml;
mod security;
mod sentinel;
mod sessions;
mod store_contract;
