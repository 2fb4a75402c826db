//! What ses-local remembers across restarts: custom verification templates and identities, with
//! their verification status (the types live in `templates` and `identities`). Saved as JSON with `--state FILE`, atomically (write a temporary
//! file, fsync, rename), so a crash never leaves half a file; a corrupt file stops startup.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::identities::Identities;
use crate::templates::Templates;

/// Everything ses-local keeps: `{"templates": {…}, "identities": {…}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    pub templates: Templates,
    /// Email addresses and domains.
    pub identities: Identities,
}

/// Where the store is kept, if anywhere.
pub struct StateFile(pub PathBuf);

impl StateFile {
    /// Reads the store; a missing file is an empty store, an unreadable or corrupt one an error.
    pub fn load(&self) -> Result<Store, String> {
        match std::fs::read_to_string(&self.0) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("state file {} is corrupt: {e}", self.0.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Store::default()),
            Err(e) => Err(format!("cannot read state file {}: {e}", self.0.display())),
        }
    }

    /// Replaces the file with `store` atomically.
    pub fn save(&self, store: &Store) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(store).map_err(|e| e.to_string())?;
        let dir = self
            .0
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let temporary = dir.join(format!(
            ".{}.tmp-{}",
            self.0
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("state"),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&json)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.0)
        };
        write().map_err(|e| format!("cannot write state file {}: {e}", self.0.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::Template;

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ses-local-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("nested/state.json")
    }

    #[test]
    fn a_saved_store_loads_back_identically() {
        let file = StateFile(temp_path("roundtrip"));
        let mut store = Store::default();
        store.identities.mark_pending("a@example.com");
        store.templates.seed(&Template {
            template_name: "T".into(),
            from_email_address: "a@example.com".into(),
            template_subject: "s".into(),
            template_content: "<p>c</p>".into(),
            success_redirection_url: "https://x/ok".into(),
            failure_redirection_url: "https://x/no".into(),
        });
        file.save(&store).expect("save");
        assert_eq!(file.load().expect("load"), store);
        let saved = std::fs::read_to_string(&file.0).expect("read");
        assert!(saved.contains("\"SuccessRedirectionURL\""), "{saved}");
        assert!(saved.contains("\"a@example.com\": \"Pending\""), "{saved}");
        let leftovers: Vec<_> = std::fs::read_dir(file.0.parent().expect("dir"))
            .expect("dir")
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_missing_file_is_an_empty_store_and_a_corrupt_one_an_error_naming_it() {
        let file = StateFile(temp_path("corrupt"));
        assert_eq!(file.load().expect("missing is fine"), Store::default());
        std::fs::create_dir_all(file.0.parent().expect("dir")).expect("dir");
        std::fs::write(&file.0, "{\"templates\": [").expect("write");
        assert!(file
            .load()
            .expect_err("corrupt")
            .contains("state.json is corrupt"));
    }

    #[test]
    fn a_verified_domain_verifies_every_address_in_it() {
        let mut store = Store::default();
        store.identities.verify("example.com");
        store.identities.mark_pending("pending@other.com");
        assert!(store.identities.is_verified_sender("noreply@Example.COM"));
        assert!(!store.identities.is_verified_sender("pending@other.com"));
        assert!(!store.identities.is_verified_sender("x@unknown.com"));
    }
}
