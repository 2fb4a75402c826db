//! The gate's settings: pacing, queue, per-address limits, the daily budget, and the follow-up
//! (status tokens, link lifetime, identity clean-up and its keep list, the webhook).

use url::Url;

use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::settings::{parse_service_url, ConfigError, Secret, Vars};

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
    /// This gate's place in a pool of regions (`SES_REGIONS` of two or more): where its queue
    /// goes while its region stays paused. `None`: one region, nowhere to hand over to.
    pub pool: Option<PoolPlace>,
}

/// A gate's region and the pool it is one of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPlace {
    pub region: String,
    pub regions: signup_verify_ses::regions::RegionPool,
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
            // Set by the shell, which knows the gate's region (its object's name).
            pool: None,
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

#[cfg(test)]
mod tests {
    use super::*;

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
