//! The Amazon SES Query API as signup-verify speaks it, pure: the calls ([`request`]) with their
//! SigV4 signature (aws-sigv4's signer), the XML replies ([`reply`]), what a reply means for the caller
//! ([`outcome`]), what one call's exchange came to ([`call`]), the SES settings ([`config`]),
//! the pool of regions and each mailbox's order among them ([`regions`]) and calendar time
//! ([`time`], the one place UTC is formatted).
//!
//! Invariant: nothing here reaches `worker` or reads a clock; the time is passed in.

pub mod call;
pub mod config;
pub mod outcome;
pub mod regions;
pub mod reply;
pub mod request;
pub mod time;
