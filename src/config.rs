//! `Config`: every setting the Worker and the gate read, parsed once (per Worker isolate, per
//! Durable Object instance) from a name → value lookup. Each area has its own type and builder:
//! [`SesConfig`] (what a signed SES call needs; its non-secret part, [`SesTarget`], is what
//! ses-setup reads from wrangler.toml), [`GateConfig`] (pacing, queue and per-address limits),
//! [`BrowserConfig`] (origins, redirects, Turnstile, honeypot, per-IP limit).
//!
//! Invariants: a bad or missing setting is a [`ConfigError`] that names the variable (for the
//! log), never its value; `Debug` never shows a secret. This module imports no other area of the
//! crate but `browser`'s parsed types and `email`'s address: the areas import their settings from here, not the reverse.

use std::fmt;
use std::net::IpAddr;

use url::Url;

use crate::browser::{AllowedOrigins, FormRedirects, OriginPolicy, RedirectTarget};
use crate::email::EmailAddress;
use crate::log::LogLevel;
use crate::turnstile::SITEVERIFY_URL;

/// A secret setting. `Debug` shows `<redacted>`, never the value; `expose` is the one way to read
/// it, at the place that uses it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// AWS credentials, from secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// Every setting, by area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub ses: SesConfig,
    pub gate: GateConfig,
    pub browser: BrowserConfig,
    /// Bearer token for `GET /gate/stats`; unset switches the endpoint off.
    pub admin_token: Option<Secret>,
    /// `DEMO_PAGE=true` serves the demo signup page at `/`.
    pub demo_page: bool,
    /// `LOG_LEVEL`: `info` (every line, the default) or `error` (only what went wrong).
    pub log_level: LogLevel,
}

/// What one signed SES call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesConfig {
    pub region: String,
    pub template_name: String,
    pub configuration_set: Option<String>,
    /// Where the Query API is POSTed: `https://email.<region>.amazonaws.com/` unless overridden.
    pub endpoint: Url,
    pub credentials: AwsCredentials,
    /// `SES_TIMEOUT_MS`: one call, connect to body.
    pub timeout_ms: u64,
}

/// The gate's pacing, queue and per-address limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateConfig {
    /// `GATE_INTERVAL_MS`: the least time between two SES calls.
    pub interval_ms: u64,
    /// `GATE_MAX_WAIT_MS`: the longest a signup waits in its request for a slot.
    pub max_wait_ms: u64,
    /// Per-address limits (`EMAIL_COOLDOWN_SECONDS`, `EMAIL_DAILY_MAX`); 0 switches one off.
    pub address_limits: AddressLimits,
    /// The most signups waiting in the gate's queue; 0 means no queue (answer `busy`).
    pub queue_max: u64,
    /// SES calls per queued signup before it is dropped (server errors, timeouts, junk).
    pub ses_max_attempts: u32,
    /// `QUEUE_MAX_AGE_SECONDS`: a queued signup older than this is dropped unsent; 0: never.
    pub queue_max_age_ms: u64,
    /// `DAILY_SEND_BUDGET`: signups taken (sent or queued) per 24 hours; 0: no budget.
    pub daily_send_budget: u64,
    /// What the gate does after a send: status tokens, detection, the webhook, clean-up.
    pub tracking: TrackingConfig,
}

/// Following a signup after its send (issue G).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingConfig {
    /// `STATUS_TOKEN_SECRET`: signs status tokens and the signup cookie; unset switches
    /// `/signup/status` and scanner-safe confirmation off.
    pub status_token_secret: Option<Secret>,
    /// `VERIFICATION_LINK_TTL_SECONDS`: how long SES's link works (SES: 24 hours); a signup still
    /// unverified after that is `expired`.
    pub link_ttl_ms: u64,
    /// `IDENTITY_CLEANUP` (`off` keeps verified identities in the SES account).
    pub identity_cleanup: bool,
    /// `IDENTITY_KEEP`: addresses and domains whose identities are never deleted (the From
    /// address belongs here), besides every identity that existed before the gate's send.
    pub identity_keep: KeepList,
    /// `WEBHOOK_URL` and `WEBHOOK_SECRET`.
    pub webhook: Option<WebhookConfig>,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        Self {
            status_token_secret: None,
            link_ttl_ms: 24 * 3_600_000,
            identity_cleanup: true,
            identity_keep: KeepList::default(),
            webhook: None,
        }
    }
}

/// Addresses and domains whose identities are never the gate's (`IDENTITY_KEEP`), compared
/// case-insensitively: an entry with `@` names one address, one without names every address
/// of that domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepList(Vec<String>);

impl KeepList {
    /// A comma list; an entry that is neither an address nor a domain is refused. Entries are
    /// kept as the address parser writes them (an internationalised domain in punycode), so
    /// they compare with the addresses signups give.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let mut entries = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parsed = match entry.split_once('@') {
                Some(_) => EmailAddress::parse(entry).map(|a| a.as_str().to_string()),
                None => EmailAddress::parse(&format!("x@{entry}")).map(|a| {
                    a.as_str()
                        .rsplit_once('@')
                        .map_or_else(String::new, |(_, d)| d.to_string())
                }),
            };
            let Ok(parsed) = parsed else {
                return Err("must be a comma list of email addresses and domains");
            };
            entries.push(parsed.to_ascii_lowercase());
        }
        Ok(Self(entries))
    }

    pub fn protects(&self, email: &EmailAddress) -> bool {
        let address = email.as_str().to_ascii_lowercase();
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        self.0
            .iter()
            .any(|entry| *entry == address || entry == domain)
    }
}

/// Where signup events are POSTed, and the Standard Webhooks key that signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: Url,
    /// The key bytes (`WEBHOOK_SECRET` is `whsec_` + their base64).
    pub key: Secret,
}

/// The per-address limits; 0 switches either off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLimits {
    pub cooldown_ms: u64,
    pub daily_max: u32,
}

impl AddressLimits {
    pub fn is_off(&self) -> bool {
        self.cooldown_ms == 0 && self.daily_max == 0
    }
}

/// What the browser-facing endpoint checks before a signup reaches the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserConfig {
    /// `ALLOWED_ORIGINS`, `REQUIRE_ORIGIN`.
    pub origin_policy: OriginPolicy,
    /// `SUCCESS_REDIRECT_URL` and `FAILURE_REDIRECT_URL`, for plain HTML form posts.
    pub form_redirects: Option<FormRedirects>,
    /// `TURNSTILE_SECRET_KEY` (and where to verify); unset switches Turnstile off.
    pub turnstile: Option<TurnstileConfig>,
    /// `TURNSTILE_SITE_KEY`, for the demo page's widget.
    pub turnstile_site_key: Option<String>,
    /// `HONEYPOT_FIELD`: the hidden field people leave empty.
    pub honeypot_field: String,
    /// `IP_RATE_LIMIT` (`off` switches the per-IP limit off).
    pub ip_rate_limit: bool,
    /// `VERIFIED_REDIRECT_URL`: where `/confirm`'s button leads; unset shows a plain page.
    pub verified_redirect: Option<RedirectTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnstileConfig {
    pub secret_key: Secret,
    pub verify_url: Url,
    /// `TURNSTILE_EXPECTED_HOSTNAMES`: when set, a token solved on any other site is refused.
    pub expected_hostnames: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config variable {} {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Parses every area. `lookup` gives a variable's value; empty or blank counts as unset.
pub fn build_config(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let vars = Vars(&lookup);
    Ok(Config {
        ses: SesConfig::from_vars(&vars)?,
        gate: GateConfig::from_vars(&vars)?,
        browser: BrowserConfig::from_vars(&vars)?,
        admin_token: match vars.get("ADMIN_TOKEN") {
            Some(token) if token.len() < 16 => {
                return Err(ConfigError {
                    variable: "ADMIN_TOKEN",
                    problem: "must be at least 16 characters",
                })
            }
            token => token.map(Secret::from),
        },
        demo_page: vars.flag("DEMO_PAGE", false)?,
        log_level: match vars.get("LOG_LEVEL").as_deref() {
            None | Some("info") => LogLevel::Info,
            Some("error") => LogLevel::Error,
            Some(_) => {
                return Err(ConfigError {
                    variable: "LOG_LEVEL",
                    problem: "must be info or error",
                })
            }
        },
    })
}

/// The variables, read through a lookup, with the typed readers every area shares.
pub struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The trimmed value; empty or blank counts as unset.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError {
            variable: name,
            problem: "is required but not set",
        })
    }

    fn number(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(ConfigError {
                    variable: name,
                    problem: "must be a whole number in its allowed range",
                }),
        }
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["true", "on", "1", "yes"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "off", "0", "no"].contains(&v.as_str()) => Ok(false),
            Some(_) => Err(ConfigError {
                variable: name,
                problem: "must be true or false (or on/off)",
            }),
        }
    }

    fn page_url(&self, name: &'static str) -> Result<Option<RedirectTarget>, ConfigError> {
        self.get(name)
            .map(|raw| {
                RedirectTarget::parse(&raw).ok_or(ConfigError {
                    variable: name,
                    problem:
                        "must be an absolute http(s) URL or a path on this Worker starting with /",
                })
            })
            .transpose()
    }
}

/// Which SES the Worker sends through, and with which template: the settings that are not
/// secrets, so a tool can read them from wrangler.toml's `[vars]` and check that same SES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesTarget {
    pub region: String,
    pub template_name: String,
    pub endpoint: Url,
}

impl SesTarget {
    /// `AWS_REGION`, `SES_TEMPLATE_NAME` and `SES_ENDPOINT` from `lookup`, checked exactly as the
    /// Worker checks them (`ses-setup --wrangler-toml` reads wrangler.toml with this).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_vars(&Vars(&lookup))
    }

    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let region = vars.required("AWS_REGION")?;
        if !is_region_name(&region) {
            return Err(ConfigError {
                variable: "AWS_REGION",
                problem: "is not a region name like us-east-1",
            });
        }
        let template_name = vars.required("SES_TEMPLATE_NAME")?;
        let endpoint = match vars.get("SES_ENDPOINT") {
            None => {
                Url::parse(&format!("https://email.{region}.amazonaws.com/")).map_err(|_| {
                    ConfigError {
                        variable: "AWS_REGION",
                        problem: "does not make a valid endpoint URL",
                    }
                })?
            }
            Some(raw) => parse_ses_endpoint(&raw)?,
        };
        Ok(Self {
            region,
            template_name,
            endpoint,
        })
    }
}

impl SesConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let SesTarget {
            region,
            template_name,
            endpoint,
        } = SesTarget::from_vars(vars)?;
        let credentials = AwsCredentials {
            access_key_id: vars.required("AWS_ACCESS_KEY_ID")?,
            secret_access_key: vars.required("AWS_SECRET_ACCESS_KEY")?.into(),
            session_token: vars.get("AWS_SESSION_TOKEN").map(Secret::from),
        };
        Ok(Self {
            region,
            template_name,
            configuration_set: vars.get("SES_CONFIGURATION_SET"),
            endpoint,
            credentials,
            timeout_ms: vars.number("SES_TIMEOUT_MS", 5000, 1..=60_000)?,
        })
    }
}

impl GateConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            interval_ms: vars.number("GATE_INTERVAL_MS", 1000, 1..=60_000)?,
            max_wait_ms: vars.number("GATE_MAX_WAIT_MS", 10_000, 0..=240_000)?,
            address_limits: AddressLimits {
                cooldown_ms: vars.number("EMAIL_COOLDOWN_SECONDS", 60, 0..=86_400)? * 1000,
                daily_max: vars.number("EMAIL_DAILY_MAX", 5, 0..=10_000)? as u32,
            },
            queue_max: vars.number("QUEUE_MAX", 10_000, 0..=1_000_000)?,
            ses_max_attempts: vars.number("SES_MAX_ATTEMPTS", 5, 1..=100)? as u32,
            queue_max_age_ms: vars.number("QUEUE_MAX_AGE_SECONDS", 21_600, 0..=604_800)? * 1000,
            daily_send_budget: vars.number("DAILY_SEND_BUDGET", 5_000, 0..=10_000_000)?,
            tracking: TrackingConfig::from_vars(vars)?,
        })
    }
}

impl TrackingConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let status_token_secret = match vars.get("STATUS_TOKEN_SECRET") {
            Some(secret) if secret.len() < 32 => {
                return Err(ConfigError {
                    variable: "STATUS_TOKEN_SECRET",
                    problem: "must be at least 32 characters (openssl rand -hex 32 makes one)",
                })
            }
            secret => secret.map(Secret::from),
        };
        let webhook = match (vars.get("WEBHOOK_URL"), vars.get("WEBHOOK_SECRET")) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError {
                    variable: "WEBHOOK_SECRET",
                    problem: "is required when WEBHOOK_URL is set",
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError {
                    variable: "WEBHOOK_URL",
                    problem: "is required when WEBHOOK_SECRET is set",
                })
            }
            (Some(url), Some(secret)) => Some(WebhookConfig {
                url: parse_service_url("WEBHOOK_URL", &url)?,
                key: webhook_key(&secret)?,
            }),
        };
        Ok(Self {
            status_token_secret,
            link_ttl_ms: vars.number("VERIFICATION_LINK_TTL_SECONDS", 86_400, 1..=86_400)? * 1000,
            identity_cleanup: vars.flag("IDENTITY_CLEANUP", true)?,
            identity_keep: KeepList::parse(&vars.get("IDENTITY_KEEP").unwrap_or_default())
                .map_err(|problem| ConfigError {
                    variable: "IDENTITY_KEEP",
                    problem,
                })?,
            webhook,
        })
    }
}

/// `whsec_` + base64 of at least 24 key bytes (Standard Webhooks).
fn webhook_key(secret: &str) -> Result<Secret, ConfigError> {
    use base64::Engine;
    let bad = |problem| ConfigError {
        variable: "WEBHOOK_SECRET",
        problem,
    };
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or(bad("must start with whsec_ (Standard Webhooks)"))?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| bad("must be whsec_ followed by base64"))?;
    if key.len() < 24 {
        return Err(bad("must hold at least 24 key bytes"));
    }
    Ok(Secret::from(hex::encode(key)))
}

impl BrowserConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            origin_policy: OriginPolicy {
                allowed: AllowedOrigins::parse(&vars.get("ALLOWED_ORIGINS").unwrap_or_default())
                    .map_err(|problem| ConfigError {
                        variable: "ALLOWED_ORIGINS",
                        problem,
                    })?,
                require_origin: vars.flag("REQUIRE_ORIGIN", false)?,
            },
            form_redirects: match (
                vars.page_url("SUCCESS_REDIRECT_URL")?,
                vars.page_url("FAILURE_REDIRECT_URL")?,
            ) {
                (Some(success), Some(failure)) => Some(FormRedirects { success, failure }),
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(ConfigError {
                        variable: "SUCCESS_REDIRECT_URL",
                        problem: "must be set together with FAILURE_REDIRECT_URL",
                    })
                }
                (Some(_), None) => {
                    return Err(ConfigError {
                        variable: "FAILURE_REDIRECT_URL",
                        problem: "must be set together with SUCCESS_REDIRECT_URL",
                    })
                }
            },
            turnstile: match vars.get("TURNSTILE_SECRET_KEY") {
                None => None,
                Some(secret_key) => Some(TurnstileConfig {
                    secret_key: secret_key.into(),
                    verify_url: match vars.get("TURNSTILE_VERIFY_URL") {
                        None => Url::parse(SITEVERIFY_URL).map_err(|_| ConfigError {
                            variable: "TURNSTILE_VERIFY_URL",
                            problem: "default is not a URL",
                        })?,
                        Some(raw) => parse_service_url("TURNSTILE_VERIFY_URL", &raw)?,
                    },
                    expected_hostnames: vars
                        .get("TURNSTILE_EXPECTED_HOSTNAMES")
                        .map(|list| {
                            list.split(',')
                                .map(|h| h.trim().to_ascii_lowercase())
                                .filter(|h| !h.is_empty())
                                .collect()
                        })
                        .unwrap_or_default(),
                }),
            },
            turnstile_site_key: match (
                vars.get("TURNSTILE_SITE_KEY"),
                vars.get("TURNSTILE_SECRET_KEY"),
            ) {
                (Some(_), None) => {
                    return Err(ConfigError {
                        variable: "TURNSTILE_SITE_KEY",
                        problem: "is set without TURNSTILE_SECRET_KEY: the widget would show and nothing would be verified; set both, or neither",
                    })
                }
                (site_key, _) => site_key,
            },
            honeypot_field: honeypot_field(vars)?,
            ip_rate_limit: vars.flag("IP_RATE_LIMIT", true)?,
            verified_redirect: vars.page_url("VERIFIED_REDIRECT_URL")?,
        })
    }
}

fn honeypot_field(vars: &Vars) -> Result<String, ConfigError> {
    let field = vars
        .get("HONEYPOT_FIELD")
        .unwrap_or_else(|| "website".to_string());
    let reserved = ["email", "cf-turnstile-response", "turnstileToken"];
    let valid = field.len() <= 64
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        && !reserved.contains(&field.as_str());
    if valid {
        Ok(field)
    } else {
        Err(ConfigError {
            variable: "HONEYPOT_FIELD",
            problem: "must be a plain field name (letters, digits, - and _) other than the signup's own fields",
        })
    }
}

fn is_region_name(region: &str) -> bool {
    region.len() <= 32
        && region.split('-').count() >= 3
        && region.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// A service URL (SES, Turnstile): `https://` anywhere; `http://` only to a loopback host (the
/// local stand-ins), never across a network.
fn parse_service_url(variable: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let bad = |problem| ConfigError { variable, problem };
    let url = Url::parse(raw).map_err(|_| bad("is not a URL"))?;
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must be a URL with a host and no credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(bad("may use http:// only for a loopback host")),
        _ => Err(bad("must use https://")),
    }
}

/// `SES_ENDPOINT`: a service URL whose path is plain (unreserved characters between slashes, no
/// `.` or `..` segment), so that it is its own SigV4 canonical path (`ses::signer`).
fn parse_ses_endpoint(raw: &str) -> Result<Url, ConfigError> {
    let url = parse_service_url("SES_ENDPOINT", raw)?;
    let plain_segment = |segment: &str| {
        !matches!(segment, "." | "..")
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    let segments: Vec<&str> = url.path().split('/').skip(1).collect();
    let (last, inner) = segments.split_last().unwrap_or((&"", &[]));
    if inner.iter().all(|s| !s.is_empty() && plain_segment(s)) && plain_segment(last) {
        Ok(url)
    } else {
        Err(ConfigError {
            variable: "SES_ENDPOINT",
            problem: "must have a plain path: letters, digits and - . _ ~ between slashes",
        })
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("AWS_REGION", "eu-west-1"),
            ("SES_TEMPLATE_NAME", "SignupVerify"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ])
    }

    fn build(vars: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        build_config(|name| vars.get(name).map(|v| v.to_string()))
    }

    fn error_for(overrides: &[(&'static str, &'static str)]) -> ConfigError {
        let mut vars = base();
        vars.extend(overrides.iter().copied());
        build(&vars).expect_err("config should be rejected")
    }

    #[test]
    fn the_minimal_config_gets_the_documented_defaults() {
        let config = build(&base()).expect("valid");
        assert_eq!(
            config.ses.endpoint.as_str(),
            "https://email.eu-west-1.amazonaws.com/"
        );
        assert_eq!(config.gate.interval_ms, 1000);
        assert_eq!(config.gate.max_wait_ms, 10_000);
        assert_eq!(config.gate.queue_max_age_ms, 21_600_000);
        assert_eq!(config.gate.daily_send_budget, 5_000);
        assert_eq!(config.ses.timeout_ms, 5000);
        assert_eq!(config.ses.configuration_set, None);
        assert_eq!(config.ses.credentials.session_token, None);
        assert_eq!(
            config.gate.address_limits,
            AddressLimits {
                cooldown_ms: 60_000,
                daily_max: 5
            }
        );
    }

    #[test]
    fn each_missing_required_variable_is_named() {
        for name in [
            "AWS_REGION",
            "SES_TEMPLATE_NAME",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            let mut vars = base();
            vars.remove(name);
            assert_eq!(build(&vars).expect_err(name).variable, name);
            vars.insert(name, "   ");
            assert_eq!(build(&vars).expect_err(name).variable, name, "blank {name}");
        }
    }

    #[test]
    fn optional_settings_are_read_when_present() {
        let mut vars = base();
        vars.extend([
            ("SES_CONFIGURATION_SET", "signup-events"),
            ("AWS_SESSION_TOKEN", "token"),
            ("SES_ENDPOINT", "http://127.0.0.1:4579/"),
            ("GATE_INTERVAL_MS", "250"),
            ("GATE_MAX_WAIT_MS", "0"),
            ("SES_TIMEOUT_MS", "800"),
            ("EMAIL_COOLDOWN_SECONDS", "0"),
            ("EMAIL_DAILY_MAX", "0"),
        ]);
        let config = build(&vars).expect("valid");
        assert_eq!(
            config.ses.configuration_set.as_deref(),
            Some("signup-events")
        );
        assert_eq!(
            config
                .ses
                .credentials
                .session_token
                .as_ref()
                .map(Secret::expose),
            Some("token")
        );
        assert_eq!(config.ses.endpoint.as_str(), "http://127.0.0.1:4579/");
        assert_eq!(
            (
                config.gate.interval_ms,
                config.gate.max_wait_ms,
                config.ses.timeout_ms
            ),
            (250, 0, 800)
        );
        assert!(config.gate.address_limits.is_off());
    }

    #[test]
    fn plain_http_endpoints_are_allowed_only_on_loopback() {
        for ok in [
            "http://localhost:9/",
            "http://127.0.0.2:9/",
            "http://[::1]:9/",
            "https://ses.example.com/",
            "https://ses.example.com/v1/ses/",
            "https://ses.example.com/ses",
        ] {
            let mut vars = base();
            vars.insert("SES_ENDPOINT", ok);
            assert!(build(&vars).is_ok(), "{ok}");
        }
        for bad in [
            "http://email.us-east-1.amazonaws.com/",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "not a url",
            "https://user:pw@ses.example.com/",
            "https://ses.example.com/?a=b",
            "https://ses.example.com/a%20b/",
            "https://ses.example.com/a//b",
        ] {
            assert_eq!(
                error_for(&[("SES_ENDPOINT", bad)]).variable,
                "SES_ENDPOINT",
                "{bad}"
            );
        }
    }

    #[test]
    fn the_log_level_is_info_unless_error_is_asked_for_and_anything_else_names_the_variable() {
        assert_eq!(build(&base()).expect("config").log_level, LogLevel::Info);
        let mut vars = base();
        vars.insert("LOG_LEVEL", "error");
        assert_eq!(build(&vars).expect("config").log_level, LogLevel::Error);
        assert_eq!(error_for(&[("LOG_LEVEL", "debug")]).variable, "LOG_LEVEL");
    }

    #[test]
    fn numbers_out_of_range_or_not_numbers_name_their_variable() {
        for (name, value) in [
            ("GATE_INTERVAL_MS", "0"),
            ("GATE_INTERVAL_MS", "-5"),
            ("GATE_MAX_WAIT_MS", "ten"),
            ("GATE_MAX_WAIT_MS", "240001"),
            ("SES_TIMEOUT_MS", "0"),
            ("SES_TIMEOUT_MS", "1e3"),
            ("EMAIL_COOLDOWN_SECONDS", "-1"),
            ("EMAIL_COOLDOWN_SECONDS", "86401"),
            ("EMAIL_DAILY_MAX", "many"),
            ("QUEUE_MAX", "lots"),
            ("SES_MAX_ATTEMPTS", "0"),
            ("ADMIN_TOKEN", "short"),
            ("QUEUE_MAX_AGE_SECONDS", "604801"),
            ("DAILY_SEND_BUDGET", "-1"),
        ] {
            assert_eq!(error_for(&[(name, value)]).variable, name, "{name}={value}");
        }
    }

    #[test]
    fn a_region_that_could_inject_into_the_host_is_refused() {
        for bad in ["us-east-1.evil.com", "US-EAST-1", "us east 1", "useast1"] {
            assert_eq!(
                error_for(&[("AWS_REGION", bad)]).variable,
                "AWS_REGION",
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let mut vars = base();
        vars.insert("AWS_SESSION_TOKEN", "tok-123");
        vars.insert("ADMIN_TOKEN", "admin-token-0123456789");
        vars.insert("TURNSTILE_SECRET_KEY", "turnstile-secret-value");
        let config = build(&vars).expect("valid");
        let shown = format!("{config:?}");
        for secret in [
            "\"secret\"",
            "tok-123",
            "admin-token-0123456789",
            "turnstile-secret-value",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("secret_access_key: <redacted>"));
        assert!(shown.contains("AKIDEXAMPLE"), "the key id is not a secret");
        assert_eq!(config.ses.credentials.secret_access_key.expose(), "secret");
    }

    #[test]
    fn browser_settings_are_parsed_and_checked() {
        let mut vars = base();
        vars.extend([
            (
                "ALLOWED_ORIGINS",
                "https://site.example, http://localhost:4321",
            ),
            ("REQUIRE_ORIGIN", "true"),
            ("SUCCESS_REDIRECT_URL", "https://site.example/thanks"),
            ("FAILURE_REDIRECT_URL", "https://site.example/oops"),
            (
                "TURNSTILE_SECRET_KEY",
                "1x0000000000000000000000000000000AA",
            ),
            (
                "TURNSTILE_VERIFY_URL",
                "http://127.0.0.1:4579/turnstile/v0/siteverify",
            ),
            ("HONEYPOT_FIELD", "url"),
            ("IP_RATE_LIMIT", "off"),
            ("DEMO_PAGE", "true"),
        ]);
        let config = build(&vars).expect("valid");
        assert!(config.browser.origin_policy.require_origin);
        assert_eq!(
            config.browser.origin_policy.allowed,
            AllowedOrigins::List(vec![
                "https://site.example".into(),
                "http://localhost:4321".into()
            ])
        );
        assert!(config.browser.form_redirects.is_some());
        assert_eq!(
            config
                .browser
                .turnstile
                .as_ref()
                .map(|t| t.verify_url.as_str()),
            Some("http://127.0.0.1:4579/turnstile/v0/siteverify")
        );
        assert!(
            !format!("{config:?}").contains("1x0000"),
            "the Turnstile secret is not in Debug"
        );
        assert_eq!(config.browser.honeypot_field, "url");
        assert!(!config.browser.ip_rate_limit && config.demo_page);

        let defaults = build(&base()).expect("valid");
        assert_eq!(defaults.browser.origin_policy, OriginPolicy::default());
        assert_eq!(
            (defaults.browser.form_redirects, defaults.browser.turnstile),
            (None, None)
        );
        assert_eq!(defaults.browser.honeypot_field, "website");
        assert!(defaults.browser.ip_rate_limit && !defaults.demo_page);
        let with_secret = error_for(&[
            ("TURNSTILE_SECRET_KEY", "x"),
            ("TURNSTILE_VERIFY_URL", "http://10.0.0.1/"),
        ]);
        assert_eq!(with_secret.variable, "TURNSTILE_VERIFY_URL");
    }

    #[test]
    fn bad_browser_settings_name_their_variable() {
        for (name, value) in [
            ("ALLOWED_ORIGINS", "https://a.example/path"),
            ("REQUIRE_ORIGIN", "maybe"),
            ("SUCCESS_REDIRECT_URL", "javascript:alert(1)"),
            ("HONEYPOT_FIELD", "email"),
            ("HONEYPOT_FIELD", "we<b>site"),
            ("IP_RATE_LIMIT", "sometimes"),
        ] {
            let mut overrides = vec![(name, value)];
            if name == "SUCCESS_REDIRECT_URL" {
                overrides.push(("FAILURE_REDIRECT_URL", "https://a.example/oops"));
            }
            assert_eq!(error_for(&overrides).variable, name, "{name}={value}");
        }
        assert_eq!(
            error_for(&[("FAILURE_REDIRECT_URL", "https://a.example/oops")]).variable,
            "SUCCESS_REDIRECT_URL"
        );
    }

    #[test]
    fn a_turnstile_site_key_without_its_secret_is_refused_naming_both() {
        let error = error_for(&[("TURNSTILE_SITE_KEY", "1x00000000000000000000AA")]);
        assert_eq!(error.variable, "TURNSTILE_SITE_KEY");
        assert!(error.problem.contains("TURNSTILE_SECRET_KEY"));
        let mut vars = base();
        vars.extend([
            ("TURNSTILE_SITE_KEY", "1x00000000000000000000AA"),
            (
                "TURNSTILE_SECRET_KEY",
                "1x0000000000000000000000000000000AA",
            ),
            (
                "TURNSTILE_EXPECTED_HOSTNAMES",
                "Site.example, www.site.example,",
            ),
        ]);
        let config = build(&vars).expect("both set");
        assert_eq!(
            config.browser.turnstile.map(|t| t.expected_hostnames),
            Some(vec![
                "site.example".to_string(),
                "www.site.example".to_string()
            ])
        );
    }

    #[test]
    fn the_keep_list_protects_addresses_and_whole_domains_and_refuses_junk() {
        let keep = KeepList::parse(" Admin@Example.com, ops.example.org ,").expect("valid");
        assert!(keep.protects(&EmailAddress::parse("admin@example.com").expect("valid")));
        assert!(!keep.protects(&EmailAddress::parse("admin+x@example.com").expect("valid")));
        assert!(keep.protects(&EmailAddress::parse("anyone@ops.example.org").expect("valid")));
        assert!(!keep.protects(&EmailAddress::parse("anyone@example.org").expect("valid")));
        assert!(KeepList::parse("not an address").is_err());
        assert_eq!(KeepList::parse(""), Ok(KeepList::default()));
        let idn = KeepList::parse("bücher.de, Joerg@bücher.com").expect("valid");
        assert!(idn.protects(&EmailAddress::parse("anna@bücher.de").expect("valid")));
        assert!(idn.protects(&EmailAddress::parse("anna@xn--bcher-kva.de").expect("valid")));
        assert!(!idn.protects(&EmailAddress::parse("anna@bucher.de").expect("valid")));
        assert!(idn.protects(&EmailAddress::parse("joerg@bücher.com").expect("valid")));
    }
}
