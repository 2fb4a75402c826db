//! ses-local: a local Amazon SES Query API (SES v1, 2010-12-01) for custom verification emails.
//! It listens on 127.0.0.1 only, answers only requests that name it in `Host` (no DNS
//! rebinding), checks SigV4 on every request like SES, and keeps an outbox whose verification
//! links work. Beside SES it stands in for Turnstile's siteverify and a DNS-over-HTTPS resolver.
//!
//! The library is the whole server; `main.rs` only reads flags. It is a library so that the fuzz
//! targets (`fuzz/`) can reach the SigV4 verifier and the Query API without HTTP.

pub mod action;
pub mod api;
pub mod clock;
pub mod dns;
pub mod faults;
pub mod hosts;
pub mod identities;
pub mod ids;
pub mod mail;
pub mod pages;
pub mod query;
pub mod sending;
pub mod server;
pub mod settings;
pub mod sigv4;
pub mod store;
pub mod templates;
pub mod turnstile;
pub mod xml;
