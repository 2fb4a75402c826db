//! Which SES regions a command acts on, and at which endpoints: the Worker's whole region pool
//! (from `--wrangler-toml`), or `--region`'s comma list with `--endpoint`'s list aligned with it,
//! else the shell's `AWS_REGION` (`AWS_DEFAULT_REGION`, `us-east-1`) alone. Pure: the shell's
//! variables are passed in.
//!
//! Invariants: every region appears once, each with one endpoint; with `--wrangler-toml` and no
//! `--region`, a shell `AWS_REGION` is never silently a region the Worker does not send through
//! (one region: it must be that region; several: it must be one of them, and all are acted on).

use std::path::Path;

use crate::aws::Target;
use crate::wrangler::WorkerSes;

/// What the command line says about regions and endpoints.
pub struct Flags<'a> {
    /// `--region`: one region or a comma list.
    pub region: Option<&'a str>,
    /// `--endpoint`: one endpoint per region of the targets, comma-separated.
    pub endpoint: Option<&'a str>,
}

/// The regions to act on, in order, each at its endpoint. `worker` is the Worker's SES as
/// `wrangler_toml` (named in messages) configures it; `env` reads the shell's variables.
pub fn resolve(
    flags: &Flags,
    worker: Option<(&WorkerSes, &Path)>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Target>, String> {
    let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let names: Vec<String> = match (flags.region, worker) {
        (Some(list), _) => {
            let names = comma_list("--region", list)?;
            for (i, name) in names.iter().enumerate() {
                if names[..i].contains(name) {
                    return Err(format!("--region names {name} twice"));
                }
            }
            names
        }
        (None, Some((worker, path))) => {
            let names: Vec<String> = worker.regions.iter().map(|r| r.name.clone()).collect();
            if let Some(shell) = env("AWS_REGION").filter(|shell| !names.contains(shell)) {
                return Err(shell_region_error(&shell, &names, worker, path));
            }
            names
        }
        (None, None) => vec![env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into())],
    };
    let endpoints: Vec<String> = match flags.endpoint {
        Some(list) => {
            let endpoints = comma_list("--endpoint", list)?;
            if endpoints.len() != names.len() {
                return Err(format!(
                    "--endpoint lists {} endpoint(s) for {} regions ({}): give one per region, \
                     comma-separated in the same order",
                    endpoints.len(),
                    names.len(),
                    names.join(", ")
                ));
            }
            endpoints
        }
        // The Worker's endpoint for a region of its pool; SES's own for any other.
        None => names
            .iter()
            .map(|name| {
                worker
                    .and_then(|(w, _)| w.regions.iter().find(|r| r.name == *name))
                    .map_or_else(
                        || format!("https://email.{name}.amazonaws.com/"),
                        |r| r.endpoint.to_string(),
                    )
            })
            .collect(),
    };
    Ok(names
        .into_iter()
        .zip(endpoints)
        .map(|(region, endpoint)| Target { region, endpoint })
        .collect())
}

/// SES templates, identities and production access are per region: a shell `AWS_REGION` the
/// Worker does not send through would set up (or check) an SES it never calls.
fn shell_region_error(shell: &str, names: &[String], worker: &WorkerSes, path: &Path) -> String {
    let variable = worker.regions_variable;
    let path = path.display();
    match names {
        [one] => format!(
            "AWS_REGION is {shell} here, but the Worker sends through {one} ({variable} in \
             {path}); SES templates, identities and production access are per region: unset \
             AWS_REGION, or change wrangler.toml"
        ),
        several => format!(
            "AWS_REGION is {shell} here, but the Worker sends through {} ({variable} in {path}), \
             not {shell}; ses-setup acts on each of those regions (SES templates, identities and \
             production access are per region): unset AWS_REGION, or use --region to name \
             regions yourself",
            several.join(", ")
        ),
    }
}

/// The trimmed entries of a comma list; none may be empty (one endpoint may serve several
/// regions, as ses-local does, so only `--region` refuses a repeat).
fn comma_list(flag: &str, list: &str) -> Result<Vec<String>, String> {
    let entries: Vec<String> = list.split(',').map(|e| e.trim().to_string()).collect();
    if entries.iter().any(String::is_empty) {
        return Err(format!("{flag} {list:?} has an empty entry"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wrangler::worker_from_text;

    /// The Worker of a wrangler.toml whose `[vars]` are `vars`.
    fn worker(vars: &str) -> WorkerSes {
        worker_from_text(
            &format!("[vars]\nSES_TEMPLATE_NAME = \"SignupVerify\"\n{vars}"),
            None,
        )
        .expect("valid vars")
    }

    fn three() -> WorkerSes {
        worker(
            "AWS_REGION = \"us-east-1\"\n\
             SES_REGIONS = \"us-east-1,eu-west-1,ap-south-1\"\n\
             SES_ENDPOINTS = \"http://127.0.0.1:1/,http://127.0.0.1:2/,http://127.0.0.1:3/\"",
        )
    }

    fn shell(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn pairs(targets: &[Target]) -> Vec<(&str, &str)> {
        targets
            .iter()
            .map(|t| (t.region.as_str(), t.endpoint.as_str()))
            .collect()
    }

    const NO_FLAGS: Flags = Flags {
        region: None,
        endpoint: None,
    };
    const PATH: &str = "site/wrangler.toml";

    #[test]
    fn with_wrangler_toml_every_region_of_the_pool_is_a_target_at_its_own_endpoint() {
        let pool = three();
        let targets = resolve(&NO_FLAGS, Some((&pool, Path::new(PATH))), shell(&[])).expect("ok");
        assert_eq!(
            pairs(&targets),
            [
                ("us-east-1", "http://127.0.0.1:1/"),
                ("eu-west-1", "http://127.0.0.1:2/"),
                ("ap-south-1", "http://127.0.0.1:3/"),
            ]
        );
    }

    #[test]
    fn a_shell_aws_region_outside_the_pool_is_refused_and_one_inside_it_still_targets_them_all() {
        let pool = three();
        let worker = Some((&pool, Path::new(PATH)));
        let error =
            resolve(&NO_FLAGS, worker, shell(&[("AWS_REGION", "sa-east-1")])).expect_err("outside");
        assert!(
            error.starts_with(
                "AWS_REGION is sa-east-1 here, but the Worker sends through us-east-1, \
                 eu-west-1, ap-south-1 (SES_REGIONS in site/wrangler.toml)"
            ),
            "{error}"
        );
        let inside = resolve(&NO_FLAGS, worker, shell(&[("AWS_REGION", "eu-west-1")]));
        assert_eq!(inside.expect("inside").len(), 3);
    }

    #[test]
    fn with_one_region_a_different_shell_aws_region_is_refused_as_before() {
        let one = worker("AWS_REGION = \"eu-west-1\"");
        let worker = Some((&one, Path::new(PATH)));
        let error =
            resolve(&NO_FLAGS, worker, shell(&[("AWS_REGION", "us-east-1")])).expect_err("other");
        assert!(
            error.starts_with(
                "AWS_REGION is us-east-1 here, but the Worker sends through eu-west-1 \
                 (AWS_REGION in site/wrangler.toml); SES templates"
            ),
            "{error}"
        );
        // AWS_DEFAULT_REGION is not the Worker's business: only AWS_REGION is compared.
        let targets = resolve(
            &NO_FLAGS,
            worker,
            shell(&[("AWS_REGION", "eu-west-1"), ("AWS_DEFAULT_REGION", "x")]),
        )
        .expect("same");
        assert_eq!(
            pairs(&targets),
            [("eu-west-1", "https://email.eu-west-1.amazonaws.com/")]
        );
    }

    #[test]
    fn a_region_list_takes_an_aligned_endpoint_list_and_refuses_a_misaligned_one_or_a_repeated_region(
    ) {
        let flags = Flags {
            region: Some("us-east-1, eu-west-1"),
            endpoint: Some("http://127.0.0.1:7/,http://127.0.0.1:8/"),
        };
        let targets = resolve(&flags, None, shell(&[("AWS_REGION", "ap-south-1")])).expect("ok");
        let shared = Flags {
            region: flags.region,
            endpoint: Some("http://127.0.0.1:7/, http://127.0.0.1:7/"),
        };
        assert_eq!(
            resolve(&shared, None, shell(&[])).map(|t| t.len()),
            Ok(2),
            "one endpoint serving both regions, as ses-local does"
        );
        assert_eq!(
            pairs(&targets),
            [
                ("us-east-1", "http://127.0.0.1:7/"),
                ("eu-west-1", "http://127.0.0.1:8/")
            ]
        );
        let one_endpoint = Flags {
            endpoint: Some("http://127.0.0.1:7/"),
            ..flags
        };
        let error = resolve(&one_endpoint, None, shell(&[])).expect_err("one for two");
        assert!(
            error
                .starts_with("--endpoint lists 1 endpoint(s) for 2 regions (us-east-1, eu-west-1)"),
            "{error}"
        );
        for (region, expected) in [
            ("us-east-1,us-east-1", "--region names us-east-1 twice"),
            ("us-east-1,", "--region \"us-east-1,\" has an empty entry"),
        ] {
            let flags = Flags {
                region: Some(region),
                endpoint: None,
            };
            assert_eq!(
                resolve(&flags, None, shell(&[])).expect_err(region),
                expected
            );
        }
    }

    #[test]
    fn a_region_list_with_wrangler_toml_uses_the_pools_endpoints_and_ses_for_other_regions() {
        let pool = three();
        let flags = Flags {
            region: Some("eu-west-1,sa-east-1"),
            endpoint: None,
        };
        let targets = resolve(
            &flags,
            Some((&pool, Path::new(PATH))),
            shell(&[("AWS_REGION", "ca-central-1")]),
        )
        .expect("--region wins over the pool and the shell");
        assert_eq!(
            pairs(&targets),
            [
                ("eu-west-1", "http://127.0.0.1:2/"),
                ("sa-east-1", "https://email.sa-east-1.amazonaws.com/")
            ]
        );
    }

    #[test]
    fn without_flags_or_wrangler_toml_the_shell_region_is_the_one_target() {
        let targets = resolve(
            &NO_FLAGS,
            None,
            shell(&[("AWS_REGION", " "), ("AWS_DEFAULT_REGION", "eu-west-1")]),
        )
        .expect("ok");
        assert_eq!(
            pairs(&targets),
            [("eu-west-1", "https://email.eu-west-1.amazonaws.com/")]
        );
        let targets = resolve(&NO_FLAGS, None, shell(&[])).expect("default");
        assert_eq!(targets[0].region, "us-east-1");
    }
}
