//! `Config`: every setting the Worker and the gate read, parsed once (per Worker isolate, per
//! Durable Object instance) from a name → value lookup. Each area parses its own part: [`SesConfig`]
//! (`signup-verify-ses`), [`GateConfig`] (`signup-verify-gate`) and [`BrowserConfig`] (here:
//! origins, redirects, Turnstile, honeypot, per-IP limit, the address checks).
//!
//! Invariants: a bad or missing setting is a [`ConfigError`] that names the variable (for the
//! log), never its value; `Debug` never shows a secret.

use url::Url;

use signup_verify_domain::settings::{parse_service_url, ConfigError, LogLevel, Secret, Vars};
use signup_verify_gate::config::GateConfig;
use signup_verify_ses::config::SesConfig;

use crate::address_check::AddressCheckConfig;
use crate::browser::AllowedOrigins;
use crate::browser::FormRedirects;
use crate::browser::OriginPolicy;
use crate::browser::RedirectTarget;
use crate::turnstile::SITEVERIFY_URL;

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
    /// `DISPOSABLE_DOMAINS`, `DISPOSABLE_ALLOW`, `MX_CHECK`, `DOH_URL`, `DOH_TIMEOUT_MS`.
    pub address_check: AddressCheckConfig,
}

impl BrowserConfig {
    /// The site key a page's Turnstile widget shows: only while Turnstile is on.
    pub fn widget_site_key(&self) -> Option<&str> {
        self.turnstile
            .as_ref()
            .and(self.turnstile_site_key.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnstileConfig {
    pub secret_key: Secret,
    pub verify_url: Url,
    /// `TURNSTILE_EXPECTED_HOSTNAMES`: when set, a token solved on any other site is refused.
    pub expected_hostnames: Vec<String>,
}

/// Parses every area. `lookup` gives a variable's value; empty or blank counts as unset.
pub fn build_config(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let vars = Vars::new(&lookup);
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
                page_url(vars, "SUCCESS_REDIRECT_URL")?,
                page_url(vars, "FAILURE_REDIRECT_URL")?,
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
            verified_redirect: page_url(vars, "VERIFIED_REDIRECT_URL")?,
            address_check: AddressCheckConfig::from_vars(vars)?,
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

/// A page setting: an absolute http(s) URL or a path on this Worker.
fn page_url(vars: &Vars, name: &'static str) -> Result<Option<RedirectTarget>, ConfigError> {
    vars.get(name)
        .map(|raw| {
            RedirectTarget::parse(&raw).ok_or(ConfigError {
                variable: name,
                problem: "must be an absolute http(s) URL or a path on this Worker starting with /",
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use signup_verify_domain::settings::LogLevel;
    use signup_verify_gate::config::AddressLimits;

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
}
