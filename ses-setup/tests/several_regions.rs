//! `ses-setup` over several SES regions (issue P), against one ses-local serving three
//! (`--region us-east-1,eu-west-1,ap-south-1`, each with its own templates and identities):
//! `--wrangler-toml` acts on every region of the Worker's pool (`SES_REGIONS`/`SES_ENDPOINTS`),
//! `--region` on a comma list; `template` and `check` report per region and sum up, and a region
//! that lacks something, or cannot be reached, is named and sets the exit code. What each
//! region holds is asked of ses-local directly, signed for that region.

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::{root, ses_call, ses_local, SesLocal, KEY_ID, SECRET};

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-south-1"];

/// A ses-local serving [`REGIONS`], the From address verified and production access granted in
/// each (ses-local.toml seeds every region alike).
fn three_region_ses() -> SesLocal {
    let seed = root().join("ses-local.toml");
    ses_local(&[
        "--config",
        seed.to_str().expect("utf-8"),
        "--region",
        &REGIONS.join(","),
        "--throttle-ms",
        "0",
    ])
}

/// A wrangler.toml, in a fresh directory under target/, whose [vars] are the Worker's with
/// `regions` as SES_REGIONS, each at `ses`.
fn wrangler_toml(name: &str, ses: &SesLocal, regions: &str) -> PathBuf {
    let dir = root()
        .join("target/ses-setup-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let endpoints = vec![ses.url.as_str(); regions.split(',').count()].join(",");
    let path = dir.join("wrangler.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"w\"\n[vars]\nAWS_REGION = \"us-east-1\"\nSES_TEMPLATE_NAME = \"SignupVerify\"\n\
             SES_REGIONS = \"{regions}\"\nSES_ENDPOINTS = \"{endpoints}\"\n"
        ),
    )
    .expect("write wrangler.toml");
    path
}

/// `ses-setup` with ses-local's credentials, no AWS_REGION unless `env` sets one; (exit code,
/// output).
fn ses_setup(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    support::run(
        Command::new(env!("CARGO_BIN_EXE_ses-setup"))
            .current_dir(root())
            .args(args)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .envs(env.iter().copied()),
    )
}

/// Whether `region`'s SES in ses-local has the template, asked with a call signed for it.
fn has_template(ses: &SesLocal, region: &str) -> bool {
    let (status, xml) = ses_call(
        ses,
        region,
        "GetCustomVerificationEmailTemplate",
        &[("TemplateName", "SignupVerify")],
    );
    match status {
        200 => {
            assert!(
                xml.contains("<FromEmailAddress>noreply@signup-verify.test</FromEmailAddress>"),
                "{region}: {xml}"
            );
            true
        }
        _ => {
            assert!(
                xml.contains("CustomVerificationEmailTemplateDoesNotExist"),
                "{region}: {status} {xml}"
            );
            false
        }
    }
}

/// Each region's block of a several-region `check` report (from its `SES REGION at` line on),
/// and the summary line.
fn blocks(text: &str) -> (Vec<(String, String)>, String) {
    let summary = text.lines().last().unwrap_or_default().to_string();
    let blocks = text
        .split("\n\nSES ")
        .skip(1)
        .map(|block| {
            let region = block.split(' ').next().unwrap_or_default().to_string();
            (region, block.to_string())
        })
        .collect();
    (blocks, summary)
}

#[test]
fn template_and_check_act_on_every_region_of_the_workers_pool_and_name_the_one_lacking_something() {
    let ses = three_region_ses();
    let config = wrangler_toml("pool", &ses, &REGIONS.join(","));
    let worker = ["--wrangler-toml", config.to_str().expect("utf-8")];
    let template = [&["template"][..], &worker].concat();
    let check = [&["check"][..], &worker].concat();
    for region in REGIONS {
        assert!(!has_template(&ses, region), "{region} starts without one");
    }

    // A shell region outside the pool is refused before any call; one inside it is fine.
    let (code, text) = ses_setup(&check, &[("AWS_REGION", "sa-east-1")]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(
            "AWS_REGION is sa-east-1 here, but the Worker sends through us-east-1, eu-west-1, \
             ap-south-1 (SES_REGIONS in"
        ),
        "{text}"
    );

    let (code, text) = ses_setup(&template, &[("AWS_REGION", "eu-west-1")]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with(
            "SES template SignupVerify in 3 regions: us-east-1, eu-west-1, ap-south-1\n"
        ),
        "{text}"
    );
    for region in REGIONS {
        let line = format!("{region}: created template SignupVerify at {}\n", ses.url);
        assert!(text.contains(&line), "{line:?} in {text}");
        assert!(has_template(&ses, region), "{region} has it now");
    }
    assert!(text.ends_with("\n3 regions: 3 done\n"), "{text}");

    let (code, text) = ses_setup(&check, &[]);
    assert_eq!(code, 0, "{text}");
    let (regions, summary) = blocks(&text);
    assert_eq!(summary, "3 regions: 3 ready", "{text}");
    assert_eq!(regions.len(), 3, "{text}");
    for ((region, block), expected) in regions.iter().zip(REGIONS) {
        assert_eq!(region, expected, "{text}");
        for line in [
            "ok      template SignupVerify: in SES and matches templates/",
            "ok      From noreply@signup-verify.test: verified",
            "ok      production access: granted",
            &format!("ready in {region}: signups can be sent"),
        ] {
            assert!(block.contains(line), "{line:?} in {block}");
        }
    }

    // eu-west-1 loses its template: check names it, and only it, and exits 1.
    let (status, xml) = ses_call(
        &ses,
        "eu-west-1",
        "DeleteCustomVerificationEmailTemplate",
        &[("TemplateName", "SignupVerify")],
    );
    assert_eq!(status, 200, "{xml}");
    let (code, text) = ses_setup(&check, &[]);
    assert_eq!(code, 1, "{text}");
    let (regions, summary) = blocks(&text);
    assert_eq!(
        summary, "3 regions: 2 ready, 1 missing something (eu-west-1)",
        "{text}"
    );
    for (region, block) in &regions {
        let lacks = block.contains("missing template SignupVerify: not in SES");
        assert_eq!(lacks, region == "eu-west-1", "{region}: {block}");
        let verdict = if lacks {
            format!("not ready in {region}: see the lines marked missing")
        } else {
            format!("ready in {region}: signups can be sent")
        };
        assert!(block.contains(&verdict), "{verdict:?} in {block}");
    }

    // `template` puts it back there and updates the others.
    let (code, text) = ses_setup(&template, &[]);
    assert_eq!(code, 0, "{text}");
    for (region, done) in [
        ("us-east-1", "updated"),
        ("eu-west-1", "created"),
        ("ap-south-1", "updated"),
    ] {
        let line = format!("{region}: {done} template SignupVerify at");
        assert!(text.contains(&line), "{line:?} in {text}");
    }
    assert_eq!(ses_setup(&check, &[]).0, 0);
}

#[test]
fn a_region_that_cannot_be_reached_is_named_and_fails_the_command_but_every_other_region_is_still_done(
) {
    let ses = three_region_ses();
    // ses-local does not serve sa-east-1: it refuses that region's signature, as SES would refuse
    // a region the account cannot use.
    let config = wrangler_toml("unreachable", &ses, "us-east-1,sa-east-1,eu-west-1");
    let worker = ["--wrangler-toml", config.to_str().expect("utf-8")];

    let (code, text) = ses_setup(&[&["template"][..], &worker].concat(), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(&format!("sa-east-1: failed at {}: SES answered", ses.url)),
        "{text}"
    );
    assert!(
        text.contains("eu-west-1: created template SignupVerify"),
        "the region after the failed one is still set up: {text}"
    );
    assert!(
        text.ends_with("\n3 regions: 2 done, 1 failed (sa-east-1)\n"),
        "{text}"
    );
    assert!(has_template(&ses, "us-east-1") && has_template(&ses, "eu-west-1"));
    assert!(!has_template(&ses, "ap-south-1"), "not in the pool");

    let (code, text) = ses_setup(&[&["check"][..], &worker].concat(), &[]);
    assert_eq!(code, 2, "{text}");
    let (regions, summary) = blocks(&text);
    assert_eq!(
        summary, "3 regions: 2 ready, 1 could not be checked (sa-east-1)",
        "{text}"
    );
    assert!(
        regions[1]
            .1
            .contains("could not check sa-east-1: SES answered"),
        "{text}"
    );
    assert!(
        regions[2]
            .1
            .contains("ready in eu-west-1: signups can be sent"),
        "{text}"
    );
}

#[test]
fn a_region_list_on_the_command_line_sets_up_just_those_regions_at_their_aligned_endpoints() {
    let ses = three_region_ses();
    let url = ses.url.as_str();
    let two = [url, url].join(",");
    let (code, text) = ses_setup(
        &[
            "template",
            "--region",
            "us-east-1, ap-south-1",
            "--endpoint",
            &two,
        ],
        // --region wins over the shell's region.
        &[("AWS_REGION", "eu-west-1")],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.ends_with("\n2 regions: 2 done\n"), "{text}");
    let holding: Vec<&str> = REGIONS
        .into_iter()
        .filter(|region| has_template(&ses, region))
        .collect();
    assert_eq!(holding, ["us-east-1", "ap-south-1"]);

    // One endpoint for two regions is refused before any call.
    let (code, text) = ses_setup(
        &[
            "check",
            "--region",
            "us-east-1,eu-west-1",
            "--endpoint",
            url,
        ],
        &[],
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("--endpoint lists 1 endpoint(s) for 2 regions (us-east-1, eu-west-1)"),
        "{text}"
    );

    // One region: the report ses-setup has always printed, no summary line.
    let (code, text) = ses_setup(
        &["template", "--region", "eu-west-1", "--endpoint", url],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        text,
        format!("SES eu-west-1 at {url} (template SignupVerify)\ncreated template SignupVerify\n")
    );
}

#[test]
fn a_bad_ses_regions_in_wrangler_toml_is_refused_naming_the_variable_and_the_file() {
    let ses = three_region_ses();
    let config = wrangler_toml("bad-regions", &ses, "us-east-1,Europe");
    let path = config.to_str().expect("utf-8");
    let (code, text) = ses_setup(&["check", "--wrangler-toml", path], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(&format!(
            "{path}: [vars]: config variable SES_REGIONS must be a comma list of region names"
        )),
        "{text}"
    );
}
