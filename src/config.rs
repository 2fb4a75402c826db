//! `Config`: every setting the Worker and the gate read, parsed once from a name → value lookup.
//! A bad or missing setting is a [`ConfigError`] that names the variable (for the log), never its value.

use std::fmt;
use std::net::IpAddr;

use url::Url;

use crate::gate::cooldown::AddressLimits;

/// AWS credentials, from secrets. `Debug` hides the secret parts.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub region: String,
    pub template_name: String,
    pub configuration_set: Option<String>,
    /// Where the Query API is POSTed: `https://email.<region>.amazonaws.com/` unless overridden.
    pub endpoint: Url,
    pub credentials: AwsCredentials,
    pub gate_interval_ms: u64,
    pub gate_max_wait_ms: u64,
    pub ses_timeout_ms: u64,
    /// Per-address limits (`EMAIL_COOLDOWN_SECONDS`, `EMAIL_DAILY_MAX`); 0 switches one off.
    pub address_limits: AddressLimits,
    /// The most signups waiting in the gate's queue; 0 means no queue (answer `busy`).
    pub queue_max: u64,
    /// SES calls per queued signup before it is dropped (server errors, timeouts, junk).
    pub ses_max_attempts: u32,
    /// Bearer token for `GET /gate/stats`; unset switches the endpoint off.
    pub admin_token: Option<String>,
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

/// Parses the settings. `lookup` gives a variable's value; empty or blank counts as unset.
pub fn build_config(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let required = |name: &'static str| {
        get(name).ok_or(ConfigError {
            variable: name,
            problem: "is required but not set",
        })
    };
    let number =
        |name: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| match get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(ConfigError {
                    variable: name,
                    problem: "must be a whole number in its allowed range",
                }),
        };

    let region = required("AWS_REGION")?;
    if !is_region_name(&region) {
        return Err(ConfigError {
            variable: "AWS_REGION",
            problem: "is not a region name like us-east-1",
        });
    }
    let template_name = required("SES_TEMPLATE_NAME")?;
    let endpoint = match get("SES_ENDPOINT") {
        None => Url::parse(&format!("https://email.{region}.amazonaws.com/")).map_err(|_| {
            ConfigError {
                variable: "AWS_REGION",
                problem: "does not make a valid endpoint URL",
            }
        })?,
        Some(raw) => parse_endpoint(&raw)?,
    };
    let credentials = AwsCredentials {
        access_key_id: required("AWS_ACCESS_KEY_ID")?,
        secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
        session_token: get("AWS_SESSION_TOKEN"),
    };
    Ok(Config {
        region,
        template_name,
        configuration_set: get("SES_CONFIGURATION_SET"),
        endpoint,
        credentials,
        gate_interval_ms: number("GATE_INTERVAL_MS", 1000, 1..=60_000)?,
        gate_max_wait_ms: number("GATE_MAX_WAIT_MS", 10_000, 0..=240_000)?,
        ses_timeout_ms: number("SES_TIMEOUT_MS", 5000, 1..=60_000)?,
        address_limits: AddressLimits {
            cooldown_ms: number("EMAIL_COOLDOWN_SECONDS", 60, 0..=86_400)? * 1000,
            daily_max: number("EMAIL_DAILY_MAX", 5, 0..=10_000)? as u32,
        },
        queue_max: number("QUEUE_MAX", 10_000, 0..=1_000_000)?,
        ses_max_attempts: number("SES_MAX_ATTEMPTS", 5, 1..=100)? as u32,
        admin_token: match get("ADMIN_TOKEN") {
            Some(token) if token.len() < 16 => {
                return Err(ConfigError {
                    variable: "ADMIN_TOKEN",
                    problem: "must be at least 16 characters",
                })
            }
            token => token,
        },
    })
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

/// `https://` anywhere; `http://` only to a loopback host (the local SES), never across a network.
fn parse_endpoint(raw: &str) -> Result<Url, ConfigError> {
    let bad = |problem| ConfigError {
        variable: "SES_ENDPOINT",
        problem,
    };
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
            config.endpoint.as_str(),
            "https://email.eu-west-1.amazonaws.com/"
        );
        assert_eq!(config.gate_interval_ms, 1000);
        assert_eq!(config.gate_max_wait_ms, 10_000);
        assert_eq!(config.ses_timeout_ms, 5000);
        assert_eq!(config.configuration_set, None);
        assert_eq!(config.credentials.session_token, None);
        assert_eq!(
            config.address_limits,
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
        assert_eq!(config.configuration_set.as_deref(), Some("signup-events"));
        assert_eq!(config.credentials.session_token.as_deref(), Some("token"));
        assert_eq!(config.endpoint.as_str(), "http://127.0.0.1:4579/");
        assert_eq!(
            (
                config.gate_interval_ms,
                config.gate_max_wait_ms,
                config.ses_timeout_ms
            ),
            (250, 0, 800)
        );
        assert!(config.address_limits.is_off());
    }

    #[test]
    fn plain_http_endpoints_are_allowed_only_on_loopback() {
        for ok in [
            "http://localhost:9/",
            "http://127.0.0.2:9/",
            "http://[::1]:9/",
            "https://ses.example.com/",
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
        ] {
            assert_eq!(
                error_for(&[("SES_ENDPOINT", bad)]).variable,
                "SES_ENDPOINT",
                "{bad}"
            );
        }
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
        let shown = format!("{:?}", build(&vars).expect("valid"));
        assert!(!shown.contains("secret") || shown.contains("secret_access_key: \"<redacted>\""));
        assert!(!shown.contains("\"secret\""));
        assert!(!shown.contains("tok-123"));
    }
}
