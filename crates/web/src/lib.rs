//! What signup-verify's HTTP endpoints decide, pure: the settings of every area ([`config`]),
//! which origins may call and where forms are redirected ([`browser`]), the signup body
//! ([`signup`]), Turnstile's siteverify ([`turnstile`]), the demo page ([`demo`]) and the
//! confirmation pages and cookie ([`confirm`]).
//!
//! Invariant: nothing here reaches `worker`; the Worker crate's `http` module moves values
//! between `worker` types and these functions.

pub mod browser;
pub mod config;
pub mod confirm;
pub mod demo;
pub mod signup;
pub mod turnstile;
