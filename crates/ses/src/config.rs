//! The SES area's settings: the region, template, endpoint, credentials and timeout one signed
//! call needs (`AWS_REGION`, `SES_TEMPLATE_NAME`, `SES_CONFIGURATION_SET`, `SES_ENDPOINT`,
//! `AWS_*`, `SES_TIMEOUT_MS`). Invariant: an endpoint's path is its own SigV4 canonical path.

use url::Url;

use signup_verify_domain::settings::{ConfigError, Secret, Vars};

use crate::regions::{is_region_name, parse_ses_endpoint, RegionPool};

/// AWS credentials, from secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
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
    /// `SES_REGIONS` and `SES_ENDPOINTS`: every region the deployment sends through (by
    /// default `region` alone). `region` and `endpoint` above are the one this config calls;
    /// a region's gate calls its own ([`Self::for_region`]).
    pub regions: RegionPool,
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
        Self::from_vars(&Vars::new(&lookup))
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
            Some(raw) => parse_ses_endpoint("SES_ENDPOINT", &raw)?,
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
        let regions = RegionPool::from_vars(vars, &region, &endpoint)?;
        Ok(Self {
            region,
            template_name,
            configuration_set: vars.get("SES_CONFIGURATION_SET"),
            endpoint,
            credentials,
            timeout_ms: vars.number("SES_TIMEOUT_MS", 5000, 1..=60_000)?,
            regions,
        })
    }

    /// The same settings calling region `name`: at its endpoint from the pool, or at SES's own
    /// endpoint for a region that left `SES_REGIONS` (its gate still sends what it holds and
    /// cleans up after it).
    pub fn for_region(&self, name: &str) -> Self {
        let endpoint = match self.regions.get(name) {
            Some(region) => region.endpoint.clone(),
            None if name == self.region => self.endpoint.clone(),
            None => Url::parse(&format!("https://email.{name}.amazonaws.com/"))
                .unwrap_or_else(|_| self.endpoint.clone()),
        };
        Self {
            region: name.to_string(),
            endpoint,
            ..self.clone()
        }
    }
}
