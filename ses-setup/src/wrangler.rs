//! The Worker's SES settings as wrangler.toml configures them: `AWS_REGION`, `SES_TEMPLATE_NAME`
//! and `SES_ENDPOINT` from `[vars]` (or, for a wrangler environment, `[env.NAME.vars]`), parsed
//! by the Worker's own [`SesTarget`], so `check` looks at the SES the deployed Worker will use.
//!
//! Invariant: like wrangler, an environment does not inherit the top-level `[vars]`.

use std::path::Path;

use signup_verify_ses::config::SesTarget;

/// The [`SesTarget`] of the Worker that `wrangler deploy [--env ENV]` would deploy from `path`.
pub fn worker_target(path: &Path, env: Option<&str>) -> Result<SesTarget, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    target_from_text(&text, env).map_err(|e| format!("{}: {e}", path.display()))
}

fn target_from_text(text: &str, env: Option<&str>) -> Result<SesTarget, String> {
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
    SesTarget::from_lookup(lookup).map_err(|e| format!("{section}: {e}"))
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

[env.bare]
name = "w-bare"
"#;

    #[test]
    fn the_region_template_and_default_endpoint_come_from_vars() {
        let target = target_from_text(WRANGLER, None).expect("target");
        assert_eq!(target.region, "eu-west-1");
        assert_eq!(target.template_name, "Welcome");
        assert_eq!(
            target.endpoint.as_str(),
            "https://email.eu-west-1.amazonaws.com/"
        );
    }

    #[test]
    fn an_environment_uses_its_own_vars_and_inherits_none() {
        let staging = target_from_text(WRANGLER, Some("staging")).expect("staging");
        assert_eq!(staging.region, "ap-south-1");
        assert_eq!(staging.template_name, "WelcomeStaging");
        assert_eq!(staging.endpoint.as_str(), "http://127.0.0.1:4579/");
        let bare = target_from_text(WRANGLER, Some("bare")).expect_err("no vars");
        assert!(
            bare.contains("[env.bare.vars]") && bare.contains("AWS_REGION"),
            "{bare}"
        );
        let missing = target_from_text(WRANGLER, Some("prod")).expect_err("no such env");
        assert_eq!(missing, "no [env.prod]");
    }

    #[test]
    fn a_setting_the_worker_would_refuse_is_refused_here_too() {
        let bad = WRANGLER.replace("\"eu-west-1\"", "\"Europe\"");
        let error = target_from_text(&bad, None).expect_err("bad region");
        assert!(error.contains("AWS_REGION is not a region name"), "{error}");
    }
}
