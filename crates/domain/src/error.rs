//! `ApiError`: every failure the HTTP layer can answer, each with one status, one stable JSON `code`
//! and one human sentence. Nothing internal (SES messages, request ids, config values) goes in here:
//! those are logged where they happen.

use serde::{Deserialize, Serialize};

/// What a browser or caller can be told went wrong.
///
/// It is serialisable because the gate Durable Object answers the Worker with it over the internal
/// RPC; the JSON body a browser sees is built by [`ApiError::body`], not by serde. The address
/// checks' refusals never cross the RPC (they are decided in the Worker, before the gate), so
/// serde skips them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ApiError {
    InvalidBody,
    MissingEmail,
    InvalidEmail,
    /// The address's domain, or the host its mail goes to, is a throwaway one; `suggestion` as
    /// for `DomainNotFound` (the list holds typo domains such as `gmial.com`).
    #[serde(skip)]
    DisposableDomain {
        suggestion: Option<String>,
    },
    /// The domain does not exist; `suggestion` is the address at the popular domain it nearly
    /// spells, if any.
    #[serde(skip)]
    DomainNotFound {
        suggestion: Option<String>,
    },
    /// The domain takes no mail (a null MX, or neither MX nor address).
    #[serde(skip)]
    DomainAcceptsNoMail {
        suggestion: Option<String>,
    },
    Unauthorized,
    OriginNotAllowed,
    CaptchaFailed,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Rejected,
    Busy {
        retry_after_secs: u64,
    },
    Cooldown {
        retry_after_secs: u64,
    },
    RateLimited {
        retry_after_secs: u64,
    },
    Misconfigured,
    UpstreamError,
    UpstreamThrottled {
        retry_after_secs: u64,
    },
    UpstreamTimeout,
    /// The gate's own storage failed; nothing was sent or queued.
    Unavailable,
    /// A status token that is missing, malformed or forged.
    InvalidToken,
    TokenExpired,
    /// A valid token for a signup the gate no longer knows (a newer signup replaced it, or
    /// its record was forgotten).
    UnknownSignup,
    /// `STATUS_TOKEN_SECRET` is not set.
    StatusOff,
    /// A confirmation before the link in the email was opened (or of a signup that can no
    /// longer be verified): refused, nothing recorded.
    NotVerified,
    /// Internal, gate to Worker: this region's gate is paused (SES says its configuration, its
    /// sandbox or its account is broken there) and was told another region may take a new
    /// signup; the Worker tries the mailbox's next region. Never a browser's answer.
    /// `open`: this gate holds an open signup of the mailbox issued to another request (the
    /// region that takes the new one marks it `contested`).
    RegionPaused {
        paused_until_ms: u64,
        open: bool,
    },
    /// Internal, gate to Worker: the signup was handed over to another region's gate while
    /// this one stayed paused; `to` names it there. The Worker asks that gate instead.
    Moved {
        to: Box<crate::status_token::SignupRef>,
    },
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidBody
            | Self::MissingEmail
            | Self::InvalidEmail
            | Self::DisposableDomain { .. }
            | Self::DomainNotFound { .. }
            | Self::DomainAcceptsNoMail { .. } => 400,
            Self::Unauthorized => 401,
            Self::OriginNotAllowed | Self::CaptchaFailed => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Rejected => 422,
            Self::Busy { .. } | Self::Cooldown { .. } | Self::RateLimited { .. } => 429,
            Self::Misconfigured => 500,
            Self::UpstreamError => 502,
            Self::UpstreamThrottled { .. } => 503,
            Self::UpstreamTimeout => 504,
            Self::Unavailable | Self::RegionPaused { .. } => 503,
            Self::Moved { .. } => 404,
            Self::InvalidToken | Self::TokenExpired => 401,
            Self::UnknownSignup | Self::StatusOff => 404,
            Self::NotVerified => 409,
        }
    }

    /// The stable machine-readable code, part of the public contract.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidBody => "invalid_body",
            Self::MissingEmail => "missing_email",
            Self::InvalidEmail => "invalid_email",
            Self::DisposableDomain { .. } => "disposable_domain",
            Self::DomainNotFound { .. } => "domain_not_found",
            Self::DomainAcceptsNoMail { .. } => "domain_accepts_no_mail",
            Self::Unauthorized => "unauthorized",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::CaptchaFailed => "captcha_failed",
            Self::NotFound => "not_found",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::UnknownSignup => "unknown_signup",
            Self::StatusOff => "status_off",
            Self::NotVerified => "not_verified",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Rejected => "rejected",
            Self::Busy { .. } => "busy",
            Self::Cooldown { .. } => "cooldown",
            Self::RateLimited { .. } => "rate_limited",
            Self::Misconfigured => "misconfigured",
            Self::UpstreamError => "upstream_error",
            Self::UpstreamThrottled { .. } => "upstream_throttled",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::Unavailable => "unavailable",
            Self::RegionPaused { .. } => "region_paused",
            Self::Moved { .. } => "moved",
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            Self::InvalidBody => {
                "The request body could not be read as a signup form or JSON object."
            }
            Self::MissingEmail => "Please enter an email address.",
            Self::InvalidEmail => "That does not look like a valid email address.",
            Self::DisposableDomain { .. } => {
                "Addresses at this domain are disposable. Please use a permanent email address."
            }
            Self::DomainNotFound { .. } => {
                "This email domain does not exist. Please check the address for a typo."
            }
            Self::DomainAcceptsNoMail { .. } => {
                "This email domain does not accept mail. Please check the address for a typo."
            }
            Self::Unauthorized => "A valid bearer token is required.",
            Self::OriginNotAllowed => "Signups are not accepted from this site.",
            Self::CaptchaFailed => "The bot check failed. Please try again.",
            Self::NotFound => "There is nothing at this address.",
            Self::MethodNotAllowed => "This method is not allowed here.",
            Self::PayloadTooLarge => "The request body is too large.",
            Self::UnsupportedMediaType => {
                "Send application/json or application/x-www-form-urlencoded."
            }
            Self::Rejected => "The email service refused this address.",
            Self::Busy { .. } => "Too many signups right now. Please try again shortly.",
            Self::Cooldown { .. } => {
                "A verification email was sent to this address moments ago. Please check your inbox."
            }
            Self::RateLimited { .. } => "Too many signups from your network. Please try again in a minute.",
            Self::Misconfigured => "The signup service is not configured correctly.",
            Self::UpstreamError => "The email service failed. Please try again later.",
            Self::UpstreamThrottled { .. } => {
                "The email service is busy. Please try again shortly."
            }
            Self::UpstreamTimeout => "The email service did not answer in time.",
            Self::Unavailable | Self::RegionPaused { .. } => {
                "The signup service is briefly unavailable. Please try again shortly."
            }
            Self::Moved { .. } => "There is no signup for this token.",
            Self::InvalidToken => "A valid status token is required.",
            Self::TokenExpired => "This status token has expired.",
            Self::UnknownSignup => "There is no signup for this token.",
            Self::StatusOff => "Signup status is not enabled on this service.",
            Self::NotVerified => {
                "The link in the verification email has not been opened yet. Open it, then confirm."
            }
        }
    }

    /// Seconds for a `Retry-After` header, where the contract sends one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Busy { retry_after_secs }
            | Self::Cooldown { retry_after_secs }
            | Self::RateLimited { retry_after_secs }
            | Self::UpstreamThrottled { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The corrected address a typo refusal offers (`jane@gmail.com` for `jane@gmial.com`).
    pub fn suggestion(&self) -> Option<&str> {
        match self {
            Self::DisposableDomain { suggestion }
            | Self::DomainNotFound { suggestion }
            | Self::DomainAcceptsNoMail { suggestion } => suggestion.as_deref(),
            _ => None,
        }
    }

    /// `{"error":{"code":"…","message":"…"}}`, and `"suggestion"` beside them when there is one.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorFields {
                code: self.code(),
                message: self.message(),
                suggestion: self.suggestion(),
            },
        }
    }
}

impl From<crate::status_token::TokenError> for ApiError {
    fn from(error: crate::status_token::TokenError) -> Self {
        use crate::status_token::TokenError;
        match error {
            TokenError::Expired => Self::TokenExpired,
            TokenError::Malformed | TokenError::Forged => Self::InvalidToken,
        }
    }
}

/// What an error answer's body holds: [`ApiError::body`].
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Debug, Serialize)]
struct ErrorFields<'a> {
    code: &'static str,
    message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    suggestion: Option<&'a str>,
}

/// Whole seconds for `Retry-After`, rounded up and never 0 (a 0 invites an immediate retry storm).
pub fn retry_after_secs(wait_ms: u64) -> u64 {
    wait_ms.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ApiError; 27] = [
        ApiError::InvalidBody,
        ApiError::MissingEmail,
        ApiError::InvalidEmail,
        ApiError::DisposableDomain { suggestion: None },
        ApiError::DomainNotFound { suggestion: None },
        ApiError::DomainAcceptsNoMail { suggestion: None },
        ApiError::Unauthorized,
        ApiError::OriginNotAllowed,
        ApiError::CaptchaFailed,
        ApiError::NotFound,
        ApiError::MethodNotAllowed,
        ApiError::PayloadTooLarge,
        ApiError::UnsupportedMediaType,
        ApiError::Rejected,
        ApiError::Busy {
            retry_after_secs: 3,
        },
        ApiError::Cooldown {
            retry_after_secs: 60,
        },
        ApiError::RateLimited {
            retry_after_secs: 60,
        },
        ApiError::Misconfigured,
        ApiError::UpstreamError,
        ApiError::UpstreamThrottled {
            retry_after_secs: 2,
        },
        ApiError::UpstreamTimeout,
        ApiError::Unavailable,
        ApiError::InvalidToken,
        ApiError::TokenExpired,
        ApiError::UnknownSignup,
        ApiError::StatusOff,
        ApiError::NotVerified,
    ];

    #[test]
    fn every_variant_has_the_status_and_code_of_the_contract_table() {
        let table: Vec<(u16, &str)> = ALL.iter().map(|e| (e.status(), e.code())).collect();
        assert_eq!(
            table,
            vec![
                (400, "invalid_body"),
                (400, "missing_email"),
                (400, "invalid_email"),
                (400, "disposable_domain"),
                (400, "domain_not_found"),
                (400, "domain_accepts_no_mail"),
                (401, "unauthorized"),
                (403, "origin_not_allowed"),
                (403, "captcha_failed"),
                (404, "not_found"),
                (405, "method_not_allowed"),
                (413, "payload_too_large"),
                (415, "unsupported_media_type"),
                (422, "rejected"),
                (429, "busy"),
                (429, "cooldown"),
                (429, "rate_limited"),
                (500, "misconfigured"),
                (502, "upstream_error"),
                (503, "upstream_throttled"),
                (504, "upstream_timeout"),
                (503, "unavailable"),
                (401, "invalid_token"),
                (401, "token_expired"),
                (404, "unknown_signup"),
                (404, "status_off"),
                (409, "not_verified"),
            ]
        );
    }

    #[test]
    fn the_error_body_has_exactly_code_and_message() {
        let body = serde_json::to_value(ApiError::InvalidEmail.body()).expect("serializes");
        assert_eq!(body["error"]["code"], "invalid_email");
        assert_eq!(body["error"].as_object().map(|o| o.len()), Some(2));
        assert_eq!(body.as_object().map(|o| o.len()), Some(1));
    }

    #[test]
    fn a_typo_refusal_carries_its_suggestion_beside_code_and_message() {
        let error = ApiError::DomainNotFound {
            suggestion: Some("jane@gmail.com".into()),
        };
        let body = serde_json::to_value(error.body()).expect("serializes");
        assert_eq!(body["error"]["code"], "domain_not_found");
        assert_eq!(body["error"]["suggestion"], "jane@gmail.com");
        let none = serde_json::to_value(ApiError::DomainAcceptsNoMail { suggestion: None }.body())
            .expect("serializes");
        assert!(none["error"].get("suggestion").is_none());
    }

    #[test]
    fn only_busy_cooldown_and_throttled_carry_a_retry_after() {
        for e in ALL {
            let expected = matches!(
                e,
                ApiError::Busy { .. }
                    | ApiError::Cooldown { .. }
                    | ApiError::RateLimited { .. }
                    | ApiError::UpstreamThrottled { .. }
            );
            assert_eq!(e.retry_after_secs().is_some(), expected, "{e:?}");
        }
    }

    #[test]
    fn errors_survive_the_internal_rpc_round_trip() {
        let worker_only = |e: &ApiError| {
            matches!(
                e,
                ApiError::DisposableDomain { .. }
                    | ApiError::DomainNotFound { .. }
                    | ApiError::DomainAcceptsNoMail { .. }
            )
        };
        for e in ALL.into_iter().filter(|e| !worker_only(e)) {
            let json = serde_json::to_string(&e).expect("serialise");
            let back: ApiError = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, e);
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        assert_eq!(retry_after_secs(0), 1);
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(1000), 1);
        assert_eq!(retry_after_secs(1001), 2);
        assert_eq!(retry_after_secs(9_500), 10);
    }
}
