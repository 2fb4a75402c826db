//! Amazon SES Query API, pure: the `SendCustomVerificationEmail` request with its SigV4 signature,
//! the XML reply, and what that reply means for the caller.

pub mod outcome;
pub mod reply;
pub mod request;
pub mod signer;
