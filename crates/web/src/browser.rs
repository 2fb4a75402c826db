//! What a browser-facing endpoint decides before and after the signup itself: which `Origin`s
//! may call it (CORS), whether a plain HTML form gets a `303` redirect to one of the
//! configured pages instead of JSON, and the per-IP limit's key. Pure: headers come in as strings.

use std::net::IpAddr;

use url::Url;

use signup_verify_domain::error::ApiError;

/// `ALLOWED_ORIGINS` and `REQUIRE_ORIGIN`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OriginPolicy {
    /// Exact origins (`https://example.com`), or any when `*` was set explicitly.
    pub allowed: AllowedOrigins,
    /// Refuse requests without an `Origin` header (curl, servers).
    pub require_origin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    #[default]
    None,
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Parses the comma list; each entry must be a bare origin (scheme, host, optional port).
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let entries: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries == ["*"] {
            return Ok(Self::Any);
        }
        let mut origins = Vec::new();
        for entry in entries {
            let url = Url::parse(entry).map_err(|_| "has an entry that is not an origin URL")?;
            let origin = url.origin().ascii_serialization();
            if !matches!(url.scheme(), "http" | "https")
                || origin != entry.trim_end_matches('/')
                || url.path() != "/"
            {
                return Err("must list bare origins like https://example.com (no path), or just *");
            }
            origins.push(origin);
        }
        Ok(if origins.is_empty() {
            Self::None
        } else {
            Self::List(origins)
        })
    }
}

/// The decision for one request: `Ok(Some(origin))` to echo in `Access-Control-Allow-Origin`,
/// `Ok(None)` for a request without `Origin` (no CORS headers needed).
pub fn check_origin(
    policy: &OriginPolicy,
    origin: Option<&str>,
    own_origin: &str,
) -> Result<Option<String>, ApiError> {
    let Some(origin) = origin.map(str::trim).filter(|o| !o.is_empty()) else {
        return if policy.require_origin {
            Err(ApiError::OriginNotAllowed)
        } else {
            Ok(None)
        };
    };
    let allowed = origin == own_origin
        || match &policy.allowed {
            AllowedOrigins::None => false,
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o == origin),
        };
    if allowed {
        Ok(Some(origin.to_string()))
    } else {
        Err(ApiError::OriginNotAllowed)
    }
}

/// Whether a page on `origin` may call with credentials (cookies): only an origin listed by
/// name in `ALLOWED_ORIGINS`, never `*` and never an unlisted one.
pub fn credentials_allowed(policy: &OriginPolicy, origin: Option<&str>, own_origin: &str) -> bool {
    match (&policy.allowed, origin) {
        (AllowedOrigins::List(list), Some(origin)) => {
            origin != own_origin && list.iter().any(|o| o == origin)
        }
        _ => false,
    }
}

/// Which call an `Origin` is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginCheck {
    /// `POST /signup` and every preflight: any allowed origin, with credentials for an origin
    /// listed by name.
    Signup,
    /// `GET /signup/status`: any allowed origin, never with credentials (its token is a bearer
    /// header, not a cookie).
    Status,
    /// `POST /confirm`: a confirmation is the signup cookie's to make, so only the Worker's own
    /// page, a caller without `Origin`, or an origin listed by name (with credentials).
    Confirm,
}

/// What an allowed caller's answer carries: the origin to echo in
/// `Access-Control-Allow-Origin` (none without `Origin`: no CORS headers), and whether
/// `Access-Control-Allow-Credentials` goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsGrant {
    pub origin: Option<String>,
    pub credentials: bool,
}

/// The decision for a `check` call from `origin` (the `Origin` header) to a Worker answering on
/// `own_origin`: its CORS grant, or `origin_not_allowed` (answered without CORS headers, so the
/// browser hides even the error).
pub fn cors_grant(
    check: OriginCheck,
    policy: &OriginPolicy,
    origin: Option<&str>,
    own_origin: &str,
) -> Result<CorsGrant, ApiError> {
    match check {
        OriginCheck::Signup => {
            let origin = check_origin(policy, origin, own_origin)?;
            let credentials = credentials_allowed(policy, origin.as_deref(), own_origin);
            Ok(CorsGrant {
                origin,
                credentials,
            })
        }
        OriginCheck::Status => Ok(CorsGrant {
            origin: check_origin(policy, origin, own_origin)?,
            credentials: false,
        }),
        OriginCheck::Confirm => {
            let credentials = credentials_allowed(policy, origin, own_origin);
            match check_origin(policy, origin, own_origin) {
                Ok(echo) if origin.is_none_or(|o| o == own_origin) || credentials => {
                    Ok(CorsGrant {
                        origin: echo,
                        credentials,
                    })
                }
                Ok(_) | Err(_) => Err(ApiError::OriginNotAllowed),
            }
        }
    }
}

/// Whether a deployment answering on `own_origin` must warn that Turnstile is off: any origin
/// but a plain-http loopback one (`make dev`, the tests).
pub fn turnstile_warning_due(turnstile_on: bool, own_origin: &str) -> bool {
    !turnstile_on && !is_loopback_http(own_origin)
}

/// Whether `origin` (`scheme://host[:port]`) is plain http on a loopback host (`make dev`).
pub fn is_loopback_http(origin: &str) -> bool {
    let Some(authority) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether an `Accept` header prefers HTML to JSON, as a browser's form submission does.
pub fn prefers_html(accept: Option<&str>) -> bool {
    let quality = |wanted: &str| {
        accept
            .unwrap_or_default()
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';').map(str::trim);
                let media = parts.next()?.to_ascii_lowercase();
                let q = parts
                    .find_map(|p| p.strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (media == wanted).then_some(q)
            })
            .fold(0.0f32, f32::max)
    };
    let html = quality("text/html");
    html > 0.0 && html >= quality("application/json")
}

/// Where a form may be sent back to: an absolute http(s) URL, or a path on the Worker's own
/// origin (`/`, `/thanks`), which is never an open redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectTarget {
    Absolute(Url),
    SameOrigin(String),
}

impl RedirectTarget {
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.starts_with('/') {
            // `//host` and `/\host` would leave the origin.
            let same_origin = !raw.starts_with("//") && !raw.contains('\\');
            return same_origin.then(|| Self::SameOrigin(raw.to_string()));
        }
        Url::parse(raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .map(Self::Absolute)
    }

    pub fn resolve(&self, own_origin: &str) -> Option<Url> {
        match self {
            Self::Absolute(url) => Some(url.clone()),
            Self::SameOrigin(path) => Url::parse(own_origin).ok()?.join(path).ok(),
        }
    }
}

/// `SUCCESS_REDIRECT_URL` and `FAILURE_REDIRECT_URL`: the only places a form is sent back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormRedirects {
    pub success: RedirectTarget,
    pub failure: RedirectTarget,
}

impl FormRedirects {
    /// `success?status=sent|queued`; the configured URL's own query is kept.
    pub fn success(&self, own_origin: &str, status: &str) -> Option<String> {
        with_param(self.success.resolve(own_origin)?, "status", status)
    }

    /// `failure?error=<code>`, the same codes as the JSON API, and `&suggested_domain=<domain>`
    /// when a typo refusal offers a suggestion: the domain only, since a URL ends up in access
    /// logs, analytics and history, and the address must not.
    pub fn failure(&self, own_origin: &str, error: &ApiError) -> Option<String> {
        let mut url = self.failure.resolve(own_origin)?;
        url.query_pairs_mut().append_pair("error", error.code());
        let suggested_domain = error
            .suggestion()
            .and_then(|address| address.rsplit_once('@'))
            .map(|(_, domain)| domain);
        if let Some(domain) = suggested_domain {
            url.query_pairs_mut()
                .append_pair("suggested_domain", domain);
        }
        Some(url.to_string())
    }
}

fn with_param(mut url: Url, name: &str, value: &str) -> Option<String> {
    url.query_pairs_mut().append_pair(name, value);
    Some(url.to_string())
}

/// The per-IP limit's key for `CF-Connecting-IP`: an IPv4 address whole, an IPv6 address by its
/// /64 (one subscriber's network: a home or a server gets a whole /64 and can pick any address in
/// it), an IPv4-mapped IPv6 address as the IPv4 it carries. Anything unreadable shares one key.
pub fn rate_limit_key(ip: Option<&str>) -> String {
    match ip.map(str::trim).and_then(|ip| ip.parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_string(),
    }
}

/// The coarser per-network limit's key: an IPv6 address by its /48 (one site's allocation: a
/// /48 holds 65,536 /64s, so the /64 limit alone lets one site rotate through them), an IPv4
/// address whole (as [`rate_limit_key`]).
pub fn network_key(ip: Option<&str>) -> String {
    match ip.map(str::trim).and_then(|ip| ip.parse::<IpAddr>().ok()) {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        _ => rate_limit_key(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_ipv6_slash_48_shares_one_network_key_and_ipv4_keeps_its_address() {
        let rotating: Vec<String> = (0..300)
            .map(|n| network_key(Some(&format!("2001:db8:abcd:{n:x}::1"))))
            .collect();
        assert!(
            rotating.iter().all(|k| k == "2001:db8:abcd::/48"),
            "{rotating:?}"
        );
        assert_ne!(
            network_key(Some("2001:db8:abce::1")),
            network_key(Some("2001:db8:abcd::1"))
        );
        assert_eq!(network_key(Some("203.0.113.7")), "203.0.113.7");
        assert_eq!(network_key(Some("::ffff:198.51.100.4")), "198.51.100.4");
        assert_eq!(network_key(None), "unknown");
    }

    #[test]
    fn only_an_origin_listed_by_name_may_call_with_credentials() {
        let listed = OriginPolicy {
            allowed: AllowedOrigins::parse("https://app.example").expect("valid"),
            require_origin: false,
        };
        let own = "https://signup.example";
        assert!(credentials_allowed(
            &listed,
            Some("https://app.example"),
            own
        ));
        assert!(!credentials_allowed(
            &listed,
            Some("https://evil.example"),
            own
        ));
        assert!(
            !credentials_allowed(&listed, Some(own), own),
            "same origin needs none"
        );
        assert!(!credentials_allowed(&listed, None, own));
        let any = OriginPolicy {
            allowed: AllowedOrigins::Any,
            require_origin: false,
        };
        assert!(!credentials_allowed(&any, Some("https://app.example"), own));
    }

    fn grant(origin: Option<&str>, credentials: bool) -> Result<CorsGrant, ApiError> {
        Ok(CorsGrant {
            origin: origin.map(str::to_string),
            credentials,
        })
    }

    #[test]
    fn a_signup_from_a_listed_origin_is_echoed_with_credentials_and_from_anywhere_else_without() {
        let listed = policy("https://app.example", false);
        let signup = |origin| cors_grant(OriginCheck::Signup, &listed, origin, OWN);
        assert_eq!(
            signup(Some("https://app.example")),
            grant(Some("https://app.example"), true)
        );
        assert_eq!(signup(Some(OWN)), grant(Some(OWN), false));
        assert_eq!(signup(None), grant(None, false));
        assert_eq!(
            signup(Some("https://evil.example")),
            Err(ApiError::OriginNotAllowed)
        );
        let any = policy("*", false);
        assert_eq!(
            cors_grant(OriginCheck::Signup, &any, Some("https://evil.example"), OWN),
            grant(Some("https://evil.example"), false),
            "`*` never grants credentials"
        );
        assert_eq!(
            cors_grant(OriginCheck::Signup, &policy("", true), None, OWN),
            Err(ApiError::OriginNotAllowed),
            "REQUIRE_ORIGIN refuses a caller without one"
        );
    }

    #[test]
    fn a_status_lookup_is_never_granted_credentials_even_from_a_listed_origin() {
        let listed = policy("https://app.example", false);
        let status = |origin| cors_grant(OriginCheck::Status, &listed, origin, OWN);
        assert_eq!(
            status(Some("https://app.example")),
            grant(Some("https://app.example"), false)
        );
        assert_eq!(status(None), grant(None, false));
        assert_eq!(
            status(Some("https://evil.example")),
            Err(ApiError::OriginNotAllowed)
        );
    }

    #[test]
    fn a_confirmation_comes_from_the_own_page_a_listed_origin_or_no_origin_and_never_via_a_wildcard(
    ) {
        let listed = policy("https://app.example", false);
        let confirm = |origin| cors_grant(OriginCheck::Confirm, &listed, origin, OWN);
        assert_eq!(confirm(Some(OWN)), grant(Some(OWN), false));
        assert_eq!(confirm(None), grant(None, false));
        assert_eq!(
            confirm(Some("https://app.example")),
            grant(Some("https://app.example"), true)
        );
        assert_eq!(
            confirm(Some("https://evil.example")),
            Err(ApiError::OriginNotAllowed)
        );
        let any = policy("*", false);
        assert_eq!(
            cors_grant(OriginCheck::Confirm, &any, Some("https://app.example"), OWN),
            Err(ApiError::OriginNotAllowed),
            "`*` lets a page call /signup, not confirm someone's signup"
        );
        assert_eq!(
            cors_grant(OriginCheck::Confirm, &any, Some(""), OWN),
            Err(ApiError::OriginNotAllowed),
            "an empty Origin is no origin of the Worker's own"
        );
        assert_eq!(
            cors_grant(OriginCheck::Confirm, &policy("", true), None, OWN),
            Err(ApiError::OriginNotAllowed)
        );
    }

    #[test]
    fn a_public_deployment_without_turnstile_is_warned_about_and_local_development_is_not() {
        assert!(turnstile_warning_due(false, "https://signup.example.com"));
        assert!(!turnstile_warning_due(true, "https://signup.example.com"));
        assert!(!turnstile_warning_due(false, "http://127.0.0.1:8787"));
    }

    #[test]
    fn loopback_http_origins_are_recognised_and_nothing_else_is() {
        for origin in [
            "http://127.0.0.1:8787",
            "http://localhost:8787",
            "http://[::1]:8787",
            "http://127.0.0.1",
        ] {
            assert!(is_loopback_http(origin), "{origin}");
        }
        for origin in [
            "https://127.0.0.1:8787",
            "http://example.com",
            "http://10.0.0.1:8787",
            "http://localhost.example.com",
        ] {
            assert!(!is_loopback_http(origin), "{origin}");
        }
    }

    #[test]
    fn the_rate_limit_key_is_the_ipv4_address_or_the_ipv6_slash_64() {
        assert_eq!(rate_limit_key(Some("203.0.113.7")), "203.0.113.7");
        assert_eq!(rate_limit_key(Some(" 203.0.113.7 ")), "203.0.113.7");
        let one_network = [
            "2001:db8:abcd:12::1",
            "2001:db8:abcd:12:ffff:ffff:ffff:ffff",
            "2001:0DB8:ABCD:0012:0:0:0:2",
        ];
        for ip in one_network {
            assert_eq!(rate_limit_key(Some(ip)), "2001:db8:abcd:12::/64", "{ip}");
        }
        assert_ne!(
            rate_limit_key(Some("2001:db8:abcd:13::1")),
            rate_limit_key(Some("2001:db8:abcd:12::1"))
        );
        assert_eq!(rate_limit_key(Some("::ffff:198.51.100.4")), "198.51.100.4");
        assert_eq!(rate_limit_key(Some("not an ip")), "unknown");
        assert_eq!(rate_limit_key(None), "unknown");
    }

    fn policy(allowed: &str, require_origin: bool) -> OriginPolicy {
        OriginPolicy {
            allowed: AllowedOrigins::parse(allowed).expect("valid"),
            require_origin,
        }
    }

    const OWN: &str = "https://signup.example.workers.dev";

    #[test]
    fn listed_origins_are_echoed_and_others_refused() {
        let p = policy("https://a.example, http://localhost:4321", false);
        assert_eq!(
            check_origin(&p, Some("https://a.example"), OWN),
            Ok(Some("https://a.example".into()))
        );
        assert_eq!(
            check_origin(&p, Some("http://localhost:4321"), OWN),
            Ok(Some("http://localhost:4321".into()))
        );
        for other in [
            "https://b.example",
            "https://a.example.evil.com",
            "http://a.example",
            "null",
            "https://A.example",
        ] {
            assert_eq!(
                check_origin(&p, Some(other), OWN),
                Err(ApiError::OriginNotAllowed),
                "{other}"
            );
        }
    }

    #[test]
    fn the_workers_own_origin_is_always_allowed_for_its_demo_page() {
        assert_eq!(
            check_origin(&policy("", false), Some(OWN), OWN),
            Ok(Some(OWN.into()))
        );
    }

    #[test]
    fn a_star_must_be_explicit_and_alone() {
        assert_eq!(AllowedOrigins::parse("*"), Ok(AllowedOrigins::Any));
        assert!(AllowedOrigins::parse("*, https://a.example").is_err());
        assert_eq!(
            check_origin(&policy("*", false), Some("https://any.example"), OWN),
            Ok(Some("https://any.example".into()))
        );
        assert_eq!(
            check_origin(&policy("", false), Some("https://any.example"), OWN),
            Err(ApiError::OriginNotAllowed)
        );
    }

    #[test]
    fn entries_must_be_bare_origins() {
        for bad in [
            "a.example",
            "https://a.example/path",
            "ftp://a.example",
            "https://a.example/?x=1",
        ] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            AllowedOrigins::parse("https://a.example/"),
            Ok(AllowedOrigins::List(vec!["https://a.example".into()]))
        );
    }

    #[test]
    fn requests_without_origin_pass_unless_an_origin_is_required() {
        assert_eq!(check_origin(&policy("", false), None, OWN), Ok(None));
        assert_eq!(
            check_origin(&policy("", true), None, OWN),
            Err(ApiError::OriginNotAllowed)
        );
        assert_eq!(
            check_origin(&policy("", true), Some("  "), OWN),
            Err(ApiError::OriginNotAllowed)
        );
    }

    #[test]
    fn a_browser_form_prefers_html_and_fetch_does_not() {
        assert!(prefers_html(Some(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(prefers_html(Some("text/html")));
        assert!(!prefers_html(Some("*/*")));
        assert!(!prefers_html(None));
        assert!(!prefers_html(Some("application/json")));
        assert!(!prefers_html(Some("text/html;q=0.5, application/json")));
    }

    #[test]
    fn redirects_go_only_to_the_configured_urls_with_the_outcome_encoded() {
        let target = |raw| RedirectTarget::parse(raw).expect("valid target");
        let redirects = FormRedirects {
            success: target("https://site.example/thanks?lang=en"),
            failure: target("/?from=form"),
        };
        assert_eq!(
            redirects.success(OWN, "queued").as_deref(),
            Some("https://site.example/thanks?lang=en&status=queued")
        );
        assert_eq!(
            redirects.failure(OWN, &ApiError::InvalidEmail).as_deref(),
            Some("https://signup.example.workers.dev/?from=form&error=invalid_email")
        );
        let typo = ApiError::DomainNotFound {
            suggestion: Some("jane+x@gmail.com".into()),
        };
        assert_eq!(
            redirects.failure(OWN, &typo).as_deref(),
            Some("https://signup.example.workers.dev/?from=form&error=domain_not_found&suggested_domain=gmail.com")
        );
    }

    #[test]
    fn a_path_target_stays_on_the_workers_own_origin() {
        for bad in [
            "//evil.example/x",
            "/\\evil.example",
            "javascript:alert(1)",
            "evil.example",
            "ftp://x.example/",
        ] {
            assert_eq!(RedirectTarget::parse(bad), None, "{bad}");
        }
        let path = RedirectTarget::parse("/").expect("a path");
        assert_eq!(
            path.resolve(OWN).map(|u| u.to_string()).as_deref(),
            Some("https://signup.example.workers.dev/")
        );
    }
}
