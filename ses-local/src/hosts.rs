//! The names ses-local answers to, checked against every request's `Host`.
//!
//! A DNS-rebinding page is a site whose name its attacker re-points at 127.0.0.1: the victim's
//! browser then lets that page read ses-local's answers, since to the browser they come from the
//! page's own origin. But the browser still sends the page's name in `Host`. Answering only
//! requests whose `Host` names this server keeps such a page from reading `/_outbox` (whose links
//! verify any address), calling the Query API with the well-known test credentials, or opening a
//! link. Accepted: `127.0.0.1`, `localhost` and `[::1]` with the bound port, the bound address
//! with it, and the `--allowed-hosts` entries; a name without its port only when the port is 80.

use std::net::IpAddr;
use std::str::FromStr;

/// The port a browser leaves out of `Host`.
const DEFAULT_HTTP_PORT: u16 = 80;

/// One accepted name (lower case; an IPv6 address in brackets) and its port: a name given
/// without a port in `--allowed-hosts` is accepted with any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    name: String,
    port: Option<u16>,
}

impl AllowedHost {
    fn accepts(&self, name: &str, port: Option<u16>) -> bool {
        self.name == name
            && match self.port {
                None => true,
                Some(own) => port.unwrap_or(DEFAULT_HTTP_PORT) == own,
            }
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// An `--allowed-hosts` entry: `name`, `name:port`, `address`, `address:port` or
/// `[ipv6]:port`, as it appears in a `Host` header.
impl FromStr for AllowedHost {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        let (name, port) = split_host(entry.trim()).ok_or_else(|| {
            format!(
                "{entry:?} is not a host: write a name or an address as it appears in a Host \
                 header, with a port to accept only that one (ses-local, ses-local:4579, \
                 [fd00::1]:4579)"
            )
        })?;
        Ok(Self { name, port })
    }
}

/// The value of `--allowed-hosts`: entries separated by commas. Empty entries are skipped, so an
/// empty `SES_LOCAL_ALLOWED_HOSTS` adds nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(pub Vec<AllowedHost>);

impl FromStr for AllowedHosts {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, String> {
        list.split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// `Host`'s value as name (lower case) and port, or `None` if it is not a host: no scheme, path,
/// user or wildcard, an IPv6 address only in brackets, and a port of digits only.
fn split_host(value: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = if let Some(inner) = value.strip_prefix('[') {
        let (address, rest) = inner.split_once(']')?;
        address.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':')?),
        };
        (&value[..address.len() + 2], port)
    } else {
        match value.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (value, None),
        }
    };
    let name_ok = name.starts_with('[')
        || (!name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    if !name_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    Some((name.to_ascii_lowercase(), port))
}

/// How verification links name this server: the bound address, or loopback when it listens on
/// every address (`0.0.0.0`, `::`), where a link opened on this machine reaches it.
pub fn link_host(bind: IpAddr) -> String {
    match bind {
        bind if bind.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Every name ses-local answers to.
#[derive(Debug, Clone)]
pub struct Hosts(Vec<AllowedHost>);

impl Hosts {
    /// The loopback names and the bound address, all with the bound `port`, and `allowed`.
    pub fn new(bind: IpAddr, port: u16, allowed: &[AllowedHost]) -> Self {
        let mut hosts: Vec<AllowedHost> = Vec::new();
        let bound = match bind {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        for name in ["127.0.0.1", "localhost", "[::1]", &bound, &link_host(bind)] {
            let host = AllowedHost {
                name: name.to_string(),
                port: Some(port),
            };
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        hosts.extend(allowed.iter().cloned());
        Self(hosts)
    }

    /// Whether `value` (a `Host` header, or an absolute request URI's authority) names this
    /// server. Case does not matter.
    pub fn accepts(&self, value: &str) -> bool {
        split_host(value).is_some_and(|(name, port)| self.0.iter().any(|h| h.accepts(&name, port)))
    }

    /// The accepted names, for a refusal's message.
    pub fn list(&self) -> String {
        self.0
            .iter()
            .map(|h| match h.port {
                Some(_) => h.to_string(),
                None => format!("{h} (any port)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(bind: &str, port: u16, allowed: &[&str]) -> Hosts {
        let allowed: Vec<AllowedHost> = allowed
            .iter()
            .map(|a| a.parse().expect("an allowed host"))
            .collect();
        Hosts::new(bind.parse().expect("an address"), port, &allowed)
    }

    #[test]
    fn loopback_names_are_accepted_with_the_bound_port_only() {
        let h = hosts("127.0.0.1", 4579, &[]);
        for ok in [
            "127.0.0.1:4579",
            "localhost:4579",
            "LOCALHOST:4579",
            "[::1]:4579",
        ] {
            assert!(h.accepts(ok), "{ok}");
        }
        for refused in [
            "127.0.0.1",
            "localhost",
            "[::1]",
            "127.0.0.1:4580",
            "127.0.0.1:04579x",
            "127.0.0.1:",
            "evil.example:4579",
            "localhost.evil.example:4579",
            "0.0.0.0:4579",
            "::1:4579",
            "",
            "user@127.0.0.1:4579",
        ] {
            assert!(!h.accepts(refused), "{refused}");
        }
    }

    #[test]
    fn on_port_80_a_name_without_its_port_is_accepted_too() {
        let h = hosts("127.0.0.1", 80, &[]);
        for ok in ["127.0.0.1", "localhost", "[::1]", "localhost:80"] {
            assert!(h.accepts(ok), "{ok}");
        }
        assert!(!h.accepts("localhost:8080"));
    }

    #[test]
    fn the_link_host_is_always_accepted() {
        for bind in [
            "127.0.0.1",
            "127.0.0.2",
            "0.0.0.0",
            "::",
            "::1",
            "192.168.1.5",
            "fd00::1",
        ] {
            let h = hosts(bind, 4579, &[]);
            let link = format!("{}:4579", link_host(bind.parse().expect("an address")));
            assert!(h.accepts(&link), "bind {bind}: link host {link}");
            let own = match bind.parse().expect("an address") {
                IpAddr::V6(v6) => format!("[{v6}]:4579"),
                v4 => format!("{v4}:4579"),
            };
            assert!(h.accepts(&own), "bind {bind}: {own}");
        }
    }

    #[test]
    fn allowed_hosts_without_a_port_match_any_port_and_with_one_only_that_one() {
        let h = hosts(
            "0.0.0.0",
            4579,
            &["ses-local", " Mail.Internal:8025", "[FD00::1]:80"],
        );
        for ok in [
            "ses-local",
            "ses-local:4579",
            "Ses-Local:9999",
            "mail.internal:8025",
            "[fd00::1]",
            "[fd00::1]:80",
            "0.0.0.0:4579",
        ] {
            assert!(h.accepts(ok), "{ok}");
        }
        for refused in [
            "mail.internal",
            "mail.internal:4579",
            "ses-local.evil.example",
        ] {
            assert!(!h.accepts(refused), "{refused}");
        }
    }

    #[test]
    fn an_allowed_hosts_list_skips_empty_entries() {
        let list: AllowedHosts = " a.internal, ,b.internal:9000,".parse().expect("a list");
        assert_eq!(
            list.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["a.internal", "b.internal:9000"]
        );
        assert_eq!("".parse::<AllowedHosts>(), Ok(AllowedHosts::default()));
        assert!("a.internal,http://b".parse::<AllowedHosts>().is_err());
    }

    #[test]
    fn an_allowed_host_must_be_a_host() {
        for bad in [
            "",
            "*",
            "http://ses-local:4579",
            "ses-local/",
            "ses-local:port",
            "ses-local:99999",
            "a b",
            "fd00::1",
            "[nope]:1",
            "user@host",
        ] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad:?}");
        }
    }
}
