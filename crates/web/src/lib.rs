//! What signup-verify's HTTP endpoints decide, pure: the settings of every area ([`config`]),
//! which endpoint a request is for ([`route`]), which origins may call and where forms are
//! redirected ([`browser`]), the signup request and its answer ([`signup`]), Turnstile's
//! siteverify ([`turnstile`]), the demo page ([`demo`]), the confirmation pages, cookie and
//! answer ([`confirm`]) and the status lookup ([`status`]).
//!
//! Invariant: nothing here reaches `worker`; the Worker crate's `http` module moves values
//! between `worker` types and these functions.

pub mod browser;
pub mod config;
pub mod confirm;
pub mod demo;
pub mod route;
pub mod signup;
pub mod status;
pub mod turnstile;
