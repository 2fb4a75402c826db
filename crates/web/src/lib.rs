//! What signup-verify's HTTP endpoints decide, pure: the settings of every area ([`config`]),
//! which endpoint a request is for ([`route`]), which origins may call and where forms are
//! redirected ([`browser`]), the signup request and its answer ([`signup`]), Turnstile's
//! siteverify ([`turnstile`]), the demo page ([`demo`]), the confirmation pages, cookie and
//! answer ([`confirm`]), the status lookup ([`status`]) and the address checks before the gate
//! ([`address_check`]: throwaway domains in [`disposable`], the DNS answers in [`dns_answer`],
//! typo suggestions in [`typo`]).
//!
//! Invariant: nothing here reaches `worker`; the Worker crate's `http` module moves values
//! between `worker` types and these functions.

pub mod address_check;
pub mod browser;
pub mod config;
pub mod confirm;
pub mod demo;
pub mod disposable;
pub mod dns_answer;
pub mod route;
pub mod signup;
pub mod status;
pub mod turnstile;
pub mod typo;
