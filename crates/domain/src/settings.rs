//! What every area's settings are made of: a [`Secret`] that never shows in `Debug`, the
//! [`ConfigError`] that names a bad variable (never its value), the [`Vars`] lookup with its typed
//! readers, the service-URL rule (`https://`, or `http://` to loopback only), and the log level.
//! Each area parses its own settings with these (`ses`, `gate`, `web`).

use std::fmt;
use std::net::IpAddr;

use url::Url;

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

/// Which log lines are written (`LOG_LEVEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Every line (the default).
    Info,
    /// Only the errors.
    Error,
}

/// The variables, read through a lookup, with the typed readers every area shares.
pub struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl<'a> Vars<'a> {
    /// The variables `lookup` gives.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self(lookup)
    }

    /// The trimmed value; empty or blank counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError {
            variable: name,
            problem: "is required but not set",
        })
    }

    pub fn number(
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

    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
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
}

/// A service URL (SES, Turnstile): `https://` anywhere; `http://` only to a loopback host (the
/// local stand-ins), never across a network.
pub fn parse_service_url(variable: &'static str, raw: &str) -> Result<Url, ConfigError> {
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

pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}
