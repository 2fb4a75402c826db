//! The `--config` file (TOML): verified identities, configuration sets and custom verification
//! templates that ses-local starts with (a seed: templates already in the state file are kept),
//! and the DNS-over-HTTPS stand-in's zone (`[[dns]]`, see `dns.rs`).
//! Unknown keys and bad values are startup errors.

use serde::Deserialize;

use crate::store::Store;
use crate::templates::Template;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub verified_identities: Vec<String>,
    #[serde(default)]
    pub configuration_sets: Vec<String>,
    #[serde(default)]
    pub templates: Vec<Template>,
    #[serde(default)]
    pub dns: Vec<crate::dns::ZoneEntry>,
}

impl Settings {
    pub fn parse(text: &str) -> Result<Self, String> {
        let settings: Settings = toml::from_str(text).map_err(|e| e.to_string())?;
        for template in &settings.templates {
            if template.template_name.trim().is_empty() {
                return Err("a template has an empty name".into());
            }
            if settings
                .templates
                .iter()
                .filter(|t| t.template_name == template.template_name)
                .count()
                > 1
            {
                return Err(format!(
                    "template {:?} is defined twice",
                    template.template_name
                ));
            }
        }
        for entry in &settings.dns {
            let name = entry.name.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                return Err("a [[dns]] entry has an empty name".into());
            }
            let same = |e: &&crate::dns::ZoneEntry| {
                e.name.trim_end_matches('.').eq_ignore_ascii_case(&name)
            };
            if settings.dns.iter().filter(same).count() > 1 {
                return Err(format!("[[dns]] name {name:?} is listed twice"));
            }
        }
        Ok(settings)
    }

    /// Marks the identities verified and adds the templates the store does not have yet.
    pub fn seed(&self, store: &mut Store) {
        for identity in &self.verified_identities {
            store.identities.verify(identity);
        }
        for template in &self.templates {
            store.templates.seed(template);
        }
    }

    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_seed_and_the_test_seed_are_valid() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dev = Settings::load(&root.join("../ses-local.toml")).expect("ses-local.toml parses");
        assert!(dev
            .verified_identities
            .iter()
            .any(|i| i == "noreply@signup-verify.test"));
        let tests = Settings::load(&root.join("tests/seed.toml")).expect("the test seed parses");
        assert!(tests
            .templates
            .iter()
            .any(|t| t.template_name == "SignupVerify"));
    }

    #[test]
    fn unknown_keys_and_duplicate_templates_are_refused() {
        assert!(Settings::parse("verfied_identities = []").is_err());
        let twice = r#"
[[templates]]
name = "T"
from = "a@b.io"
subject = "s"
content = "c"
success_url = "http://x/"
failure_url = "http://x/"
[[templates]]
name = "T"
from = "a@b.io"
subject = "s"
content = "c"
success_url = "http://x/"
failure_url = "http://x/"
"#;
        assert!(Settings::parse(twice)
            .expect_err("duplicate")
            .contains("twice"));
        assert!(
            Settings::parse("[[templates]]\nname = \"T\"").is_err(),
            "missing fields"
        );
    }
}
