//! Which endpoint a request is for, pure: its path and method to a [`Route`] or a [`Refusal`]
//! (`not_found`, or `method_not_allowed` with the methods the path takes), and who may read the
//! admin endpoint ([`admin_access`]).
//!
//! Invariants: the route is decided before the config is read, so an unknown path is
//! `not_found` and a known path with another method `method_not_allowed` whatever the config;
//! only the health check answers without a config (every [`Endpoint`] needs one).

use subtle::ConstantTimeEq;

use signup_verify_domain::error::ApiError;
use signup_verify_domain::settings::Secret;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET` or `HEAD /healthz`: answered without the config.
    Health,
    /// An endpoint that needs the config.
    Endpoint(Endpoint),
}

/// An endpoint that needs the config (a broken one is `misconfigured`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /signup`.
    Signup,
    /// `GET /signup/status`.
    Status,
    /// `GET /confirm`: the question and the button.
    ConfirmPage,
    /// `POST /confirm`.
    Confirm,
    /// `GET /gate/stats`.
    Stats,
    /// `GET /` (the demo page).
    DemoPage,
    /// `GET /demo.js`.
    DemoScript,
    /// `OPTIONS` of a browser-facing endpoint: the CORS preflight.
    Preflight(Preflight),
}

/// What a CORS preflight grants: one method and one request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preflight {
    pub method: &'static str,
    pub request_header: &'static str,
}

/// Why a request reaches no endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    /// The path is known; `allow` lists its methods (the `Allow` header).
    MethodNotAllowed {
        allow: &'static str,
    },
}

impl Refusal {
    pub fn error(self) -> ApiError {
        match self {
            Self::NotFound => ApiError::NotFound,
            Self::MethodNotAllowed { .. } => ApiError::MethodNotAllowed,
        }
    }
}

const JSON_BODY: Preflight = Preflight {
    method: "POST",
    request_header: "content-type",
};

/// The endpoint for `path` and `method` (an upper-case method name).
pub fn route(path: &str, method: &str) -> Result<Route, Refusal> {
    let allow = |allow| Err(Refusal::MethodNotAllowed { allow });
    let endpoint = match (path, method) {
        ("/signup", "POST") => Endpoint::Signup,
        ("/signup", "OPTIONS") => Endpoint::Preflight(JSON_BODY),
        ("/signup", _) => return allow("POST, OPTIONS"),
        ("/signup/status", "GET") => Endpoint::Status,
        // A GET with an `Authorization` header needs a preflight.
        ("/signup/status", "OPTIONS") => Endpoint::Preflight(Preflight {
            method: "GET",
            request_header: "authorization",
        }),
        ("/signup/status", _) => return allow("GET, OPTIONS"),
        ("/confirm", "GET") => Endpoint::ConfirmPage,
        ("/confirm", "POST") => Endpoint::Confirm,
        // A `fetch` with a JSON body needs a preflight.
        ("/confirm", "OPTIONS") => Endpoint::Preflight(JSON_BODY),
        ("/confirm", _) => return allow("GET, POST, OPTIONS"),
        ("/gate/stats", "GET") => Endpoint::Stats,
        ("/gate/stats", _) => return allow("GET"),
        ("/", "GET") => Endpoint::DemoPage,
        ("/demo.js", "GET") => Endpoint::DemoScript,
        ("/healthz", "GET" | "HEAD") => return Ok(Route::Health),
        ("/healthz", _) => return allow("GET, HEAD"),
        _ => return Err(Refusal::NotFound),
    };
    Ok(Route::Endpoint(endpoint))
}

/// Whether `authorization` may read the admin endpoint: `not_found` while `ADMIN_TOKEN` is
/// unset (the endpoint is off), then only `Bearer <ADMIN_TOKEN>`, compared in constant time.
pub fn admin_access(
    admin_token: Option<&Secret>,
    authorization: Option<&str>,
) -> Result<(), ApiError> {
    let token = admin_token.ok_or(ApiError::NotFound)?.expose();
    let presented = authorization
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_endpoint_is_reached_by_its_path_and_method_only() {
        for (path, method, endpoint) in [
            ("/signup", "POST", Endpoint::Signup),
            ("/signup/status", "GET", Endpoint::Status),
            ("/confirm", "GET", Endpoint::ConfirmPage),
            ("/confirm", "POST", Endpoint::Confirm),
            ("/gate/stats", "GET", Endpoint::Stats),
            ("/", "GET", Endpoint::DemoPage),
            ("/demo.js", "GET", Endpoint::DemoScript),
        ] {
            assert_eq!(
                route(path, method),
                Ok(Route::Endpoint(endpoint)),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn only_the_health_check_is_answered_without_an_endpoint_that_needs_the_config() {
        assert_eq!(route("/healthz", "GET"), Ok(Route::Health));
        assert_eq!(route("/healthz", "HEAD"), Ok(Route::Health));
    }

    #[test]
    fn the_preflights_grant_the_method_and_header_their_endpoint_needs() {
        let preflight = |path| match route(path, "OPTIONS") {
            Ok(Route::Endpoint(Endpoint::Preflight(p))) => (p.method, p.request_header),
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(preflight("/signup"), ("POST", "content-type"));
        assert_eq!(preflight("/signup/status"), ("GET", "authorization"));
        assert_eq!(preflight("/confirm"), ("POST", "content-type"));
    }

    #[test]
    fn another_method_on_a_known_path_is_refused_with_the_methods_it_takes() {
        for (path, method, allow) in [
            ("/signup", "GET", "POST, OPTIONS"),
            ("/signup/status", "POST", "GET, OPTIONS"),
            ("/confirm", "PUT", "GET, POST, OPTIONS"),
            ("/gate/stats", "POST", "GET"),
            ("/healthz", "POST", "GET, HEAD"),
        ] {
            assert_eq!(
                route(path, method),
                Err(Refusal::MethodNotAllowed { allow }),
                "{method} {path}"
            );
        }
        assert_eq!(
            Refusal::MethodNotAllowed { allow: "GET" }.error(),
            ApiError::MethodNotAllowed
        );
    }

    #[test]
    fn an_unknown_path_and_a_demo_path_with_another_method_are_not_found() {
        for (path, method) in [
            ("/nope", "GET"),
            ("/signup/", "POST"),
            ("/", "POST"),
            ("/demo.js", "HEAD"),
        ] {
            assert_eq!(
                route(path, method),
                Err(Refusal::NotFound),
                "{method} {path}"
            );
        }
        assert_eq!(Refusal::NotFound.error(), ApiError::NotFound);
    }

    #[test]
    fn the_admin_endpoint_is_off_without_a_token_and_wants_exactly_its_bearer_token() {
        let token = Secret::from("an admin token of some length".to_string());
        assert_eq!(
            admin_access(None, Some("Bearer anything")),
            Err(ApiError::NotFound)
        );
        assert_eq!(
            admin_access(Some(&token), Some("Bearer an admin token of some length")),
            Ok(())
        );
        for wrong in [
            None,
            Some(""),
            Some("Bearer "),
            Some("an admin token of some length"),
            Some("bearer an admin token of some length"),
            Some("Bearer an admin token of some lengt"),
            Some("Bearer an admin token of some length "),
        ] {
            assert_eq!(
                admin_access(Some(&token), wrong),
                Err(ApiError::Unauthorized),
                "{wrong:?}"
            );
        }
    }
}
