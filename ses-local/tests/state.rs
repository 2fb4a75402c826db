//! `--state FILE`: templates and identities survive a restart; a corrupt file stops startup.

mod support;

use support::{call, start_failure, start_with, status_of, template_params, FROM};

fn state_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ses-local-state-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("state.json")
}

#[test]
fn templates_and_identities_survive_a_restart() {
    let path = state_path("restart");
    let state = path.to_str().expect("utf-8 path");
    let config = support::seed_file();
    {
        let ses = start_with(
            &["--config", &config, "--state", state],
            &["--throttle-ms", "0"],
        );
        assert_eq!(
            call(
                &ses,
                "CreateCustomVerificationEmailTemplate",
                &template_params("Kept", FROM)
            )
            .status,
            200
        );
        assert_eq!(
            call(
                &ses,
                "VerifyEmailIdentity",
                &[("EmailAddress", "kept@example.com")]
            )
            .status,
            200
        );
        assert_eq!(
            call(
                &ses,
                "DeleteCustomVerificationEmailTemplate",
                &[("TemplateName", "SignupVerify")]
            )
            .status,
            200
        );
    }
    let ses = start_with(&["--state", state], &["--throttle-ms", "0"]);
    let names = call(&ses, "ListCustomVerificationEmailTemplates", &[]).all("TemplateName");
    assert_eq!(names, vec!["Kept"], "the deletion was kept too");
    assert_eq!(
        status_of(&ses, "kept@example.com").as_deref(),
        Some("Pending")
    );
    assert_eq!(status_of(&ses, FROM).as_deref(), Some("Success"));
}

#[test]
fn a_corrupt_state_file_is_a_clear_startup_error() {
    let path = state_path("corrupt");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    std::fs::write(&path, "{\"templates\": {\"half").expect("write");
    let (code, stderr) = start_failure(&[], &path);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("state.json is corrupt"), "{stderr}");
}
