//! The Worker's SES settings as wrangler.toml configures them, from `[vars]` (or, for a wrangler
//! environment, `[env.NAME.vars]`): the template (`SES_TEMPLATE_NAME`) and the whole region pool
//! (`SES_REGIONS` / `SES_ENDPOINTS`, else `AWS_REGION` at `SES_ENDPOINT` alone), parsed by the
//! Worker's own [`SesTarget`] and [`RegionPool`], so `template` and `check` act on the SES
//! regions the deployed Worker will use.
//!
//! Invariant: like wrangler, an environment does not inherit the top-level `[vars]`; a setting
//! the Worker would refuse is refused here, naming its variable.

use std::path::Path;

use signup_verify_domain::settings::Vars;
use signup_verify_ses::config::SesTarget;
use signup_verify_ses::regions::{Region, RegionPool};

/// What `wrangler deploy [--env ENV]` would deploy, as far as SES goes.
#[derive(Debug)]
pub struct WorkerSes {
    /// `SES_TEMPLATE_NAME`.
    pub template_name: String,
    /// Every region of the pool, in `SES_REGIONS`'s order, each with its endpoint.
    pub regions: Vec<Region>,
    /// The variable that named the regions: `SES_REGIONS`, or `AWS_REGION` without it.
    pub regions_variable: &'static str,
}

/// The [`WorkerSes`] of the Worker that `wrangler deploy [--env ENV]` would deploy from `path`.
pub fn worker_ses(path: &Path, env: Option<&str>) -> Result<WorkerSes, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    worker_from_text(&text, env).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn worker_from_text(text: &str, env: Option<&str>) -> Result<WorkerSes, String> {
    let document: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    let (table, section) = match env {
        None => (&document, "[vars]".to_string()),
        Some(name) => (
            document
                .get("env")
                .and_then(|envs| envs.get(name))
                .and_then(toml::Value::as_table)
                .ok_or(format!("no [env.{name}]"))?,
            format!("[env.{name}.vars]"),
        ),
    };
    let vars = table.get("vars").and_then(toml::Value::as_table);
    let lookup = |name: &str| {
        vars.and_then(|v| v.get(name)).map(|value| match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let in_section = |e| format!("{section}: {e}");
    let target = SesTarget::from_lookup(lookup).map_err(in_section)?;
    let pool = RegionPool::from_vars(&Vars::new(&lookup), &target.region, &target.endpoint)
        .map_err(in_section)?;
    Ok(WorkerSes {
        template_name: target.template_name,
        regions: pool.regions().to_vec(),
        regions_variable: if Vars::new(&lookup).get("SES_REGIONS").is_some() {
            "SES_REGIONS"
        } else {
            "AWS_REGION"
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRANGLER: &str = r#"
name = "w"
[vars]
AWS_REGION = "eu-west-1"
SES_TEMPLATE_NAME = "Welcome"

[env.staging.vars]
AWS_REGION = "ap-south-1"
SES_TEMPLATE_NAME = "WelcomeStaging"
SES_ENDPOINT = "http://127.0.0.1:4579/"

[env.pool.vars]
AWS_REGION = "us-east-1"
SES_TEMPLATE_NAME = "Welcome"
SES_REGIONS = "us-east-1, eu-west-1,ap-south-1"
SES_ENDPOINTS = "http://127.0.0.1:1/,http://127.0.0.1:2/,http://localhost:3/"

[env.bare]
name = "w-bare"
"#;

    fn regions(worker: &WorkerSes) -> Vec<(&str, &str)> {
        worker
            .regions
            .iter()
            .map(|r| (r.name.as_str(), r.endpoint.as_str()))
            .collect()
    }

    #[test]
    fn without_ses_regions_the_one_region_template_and_default_endpoint_come_from_vars() {
        let worker = worker_from_text(WRANGLER, None).expect("worker");
        assert_eq!(worker.template_name, "Welcome");
        assert_eq!(
            regions(&worker),
            [("eu-west-1", "https://email.eu-west-1.amazonaws.com/")]
        );
        assert_eq!(worker.regions_variable, "AWS_REGION");
    }

    #[test]
    fn ses_regions_and_ses_endpoints_make_the_pool_the_worker_builds_in_their_order() {
        let worker = worker_from_text(WRANGLER, Some("pool")).expect("pool");
        assert_eq!(
            regions(&worker),
            [
                ("us-east-1", "http://127.0.0.1:1/"),
                ("eu-west-1", "http://127.0.0.1:2/"),
                ("ap-south-1", "http://localhost:3/"),
            ]
        );
        assert_eq!(worker.regions_variable, "SES_REGIONS");
        let defaults = WRANGLER.replace(
            "SES_ENDPOINTS = \"http://127.0.0.1:1/,http://127.0.0.1:2/,http://localhost:3/\"",
            "",
        );
        let worker = worker_from_text(&defaults, Some("pool")).expect("default endpoints");
        assert_eq!(
            regions(&worker)[1],
            ("eu-west-1", "https://email.eu-west-1.amazonaws.com/")
        );
    }

    #[test]
    fn a_bad_ses_regions_or_ses_endpoints_is_refused_naming_the_variable() {
        let bad = WRANGLER.replace("eu-west-1,ap-south-1\"", "Europe,ap-south-1\"");
        let error = worker_from_text(&bad, Some("pool")).expect_err("bad SES_REGIONS");
        assert!(
            error.starts_with("[env.pool.vars]: ") && error.contains("SES_REGIONS must be"),
            "{error}"
        );
        let short = WRANGLER.replace(",http://localhost:3/", "");
        let error = worker_from_text(&short, Some("pool")).expect_err("two endpoints");
        assert!(
            error.contains("SES_ENDPOINTS must list one endpoint"),
            "{error}"
        );
        let alone = WRANGLER.replace("SES_REGIONS = ", "# SES_REGIONS = ");
        let error = worker_from_text(&alone, Some("pool")).expect_err("no SES_REGIONS");
        assert!(
            error.contains("SES_ENDPOINTS is set without SES_REGIONS"),
            "{error}"
        );
    }

    #[test]
    fn an_environment_uses_its_own_vars_and_inherits_none() {
        let staging = worker_from_text(WRANGLER, Some("staging")).expect("staging");
        assert_eq!(staging.template_name, "WelcomeStaging");
        assert_eq!(
            regions(&staging),
            [("ap-south-1", "http://127.0.0.1:4579/")]
        );
        let bare = worker_from_text(WRANGLER, Some("bare")).expect_err("no vars");
        assert!(
            bare.contains("[env.bare.vars]") && bare.contains("AWS_REGION"),
            "{bare}"
        );
        let missing = worker_from_text(WRANGLER, Some("prod")).expect_err("no such env");
        assert_eq!(missing, "no [env.prod]");
    }

    #[test]
    fn a_setting_the_worker_would_refuse_is_refused_here_too() {
        let bad = WRANGLER.replace("\"eu-west-1\"", "\"Europe\"");
        let error = worker_from_text(&bad, None).expect_err("bad region");
        assert!(error.contains("AWS_REGION is not a region name"), "{error}");
    }
}
