//! `ses-setup`: what a site owner runs once against their own SES account (or ses-local).
//!
//! - `template` creates the custom verification email template from `templates/`, or updates it
//!   when it exists (idempotent);
//! - `check` asks SES what is still missing before signups can be sent: the template, the From
//!   address's verification (it starts one with `VerifyEmailIdentity` when there is none), and
//!   production access. It exits 1 while anything is missing.
//!
//! With `--wrangler-toml FILE` (what `make ses-template`, `make ses-check` and `make deploy` pass),
//! the region, the template name and the endpoint are the Worker's own, from that file's `[vars]`
//! (or `[env.NAME.vars]` with `--wrangler-env NAME`): one region for the Worker and its checks. A
//! different `AWS_REGION` in the environment is then an error, not a second region; the template
//! file must name the template `SES_TEMPLATE_NAME` names.
//!
//! Credentials are the standard AWS ones: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (`AWS_SESSION_TOKEN`), else the profile `AWS_PROFILE` (default `default`) of
//! `~/.aws/credentials`. Nothing secret is printed.

mod aws;
mod template;
mod wrangler;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::aws::{Client, Target};
use crate::template::TemplateFile;

const USAGE: &str =
    "usage: ses-setup <template|check> [--dir DIR] [--wrangler-toml FILE [--wrangler-env NAME]]
                 [--region REGION] [--endpoint URL]
                 [--from ADDRESS] [--success-url URL] [--failure-url URL]

  template   create the template in templates/template.toml, or update it if it exists
  check      report what SES still needs: template, From address, production access

  --dir        the template directory (default: templates)
  --wrangler-toml   the Worker's wrangler.toml: region, template name and endpoint from its
               [vars] (AWS_REGION, SES_TEMPLATE_NAME, SES_ENDPOINT), as the Worker reads them
  --wrangler-env    with --wrangler-toml: that file's [env.NAME.vars] instead
  --region     SES region (default: --wrangler-toml's, else AWS_REGION, AWS_DEFAULT_REGION,
               else us-east-1)
  --endpoint   SES Query endpoint (default: --wrangler-toml's SES_ENDPOINT, else
               https://email.REGION.amazonaws.com/; ses-local: http://127.0.0.1:4579/)
  --from, --success-url, --failure-url   override the template file's values";

struct Args {
    command: String,
    dir: PathBuf,
    wrangler_toml: Option<PathBuf>,
    wrangler_env: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    overrides: template::Overrides,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let command = args.next().ok_or("no command")?;
    if command != "template" && command != "check" {
        return Err(format!("unknown command {command}"));
    }
    let mut parsed = Args {
        command,
        dir: PathBuf::from("templates"),
        wrangler_toml: None,
        wrangler_env: None,
        region: None,
        endpoint: None,
        overrides: template::Overrides::default(),
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => parsed.dir = PathBuf::from(value()?),
            "--wrangler-toml" => parsed.wrangler_toml = Some(PathBuf::from(value()?)),
            "--wrangler-env" => parsed.wrangler_env = Some(value()?),
            "--region" => parsed.region = Some(value()?),
            "--endpoint" => parsed.endpoint = Some(value()?),
            "--from" => parsed.overrides.from = Some(value()?),
            "--success-url" => parsed.overrides.success_url = Some(value()?),
            "--failure-url" => parsed.overrides.failure_url = Some(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if parsed.wrangler_env.is_some() && parsed.wrangler_toml.is_none() {
        return Err("--wrangler-env needs --wrangler-toml".into());
    }
    Ok(parsed)
}

/// Which SES to call, and the template name the Worker sends when `--wrangler-toml` says.
fn resolve_target(args: &Args) -> Result<(Target, Option<String>), String> {
    let env_var = |name: &str| std::env::var(name).ok().filter(|r| !r.trim().is_empty());
    let worker = match &args.wrangler_toml {
        Some(path) => Some(wrangler::worker_target(path, args.wrangler_env.as_deref())?),
        None => None,
    };
    let region = match (&args.region, &worker, &args.wrangler_toml) {
        (Some(region), _, _) => region.clone(),
        (None, Some(worker), Some(path)) => {
            // One region: a shell's AWS_REGION that differs would check (or set up) an SES the
            // Worker never calls.
            if let Some(shell) = env_var("AWS_REGION").filter(|r| *r != worker.region) {
                return Err(format!(
                    "AWS_REGION is {shell} here, but the Worker sends through {} (AWS_REGION in \
                     {}); SES templates, identities and production access are per region: \
                     unset AWS_REGION, or change wrangler.toml",
                    worker.region,
                    path.display()
                ));
            }
            worker.region.clone()
        }
        _ => env_var("AWS_REGION")
            .or_else(|| env_var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into()),
    };
    let endpoint = args
        .endpoint
        .clone()
        .or_else(|| {
            // The Worker's endpoint only when it is the Worker's region too.
            worker
                .as_ref()
                .filter(|w| w.region == region)
                .map(|w| w.endpoint.to_string())
        })
        .unwrap_or_else(|| format!("https://email.{region}.amazonaws.com/"));
    Ok((Target { region, endpoint }, worker.map(|w| w.template_name)))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("ses-setup: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ses-setup: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the command; `Ok(false)` when `check` found something missing.
fn run(args: &Args) -> Result<bool, String> {
    let (target, worker_template) = resolve_target(args)?;
    let file = TemplateFile::load(&args.dir, &args.overrides)?;
    if let Some(worker) = worker_template.filter(|w| *w != file.name) {
        return Err(format!(
            "{} names the template {}, but the Worker sends {worker} (SES_TEMPLATE_NAME in \
             wrangler.toml): make them the same",
            args.dir.join("template.toml").display(),
            file.name
        ));
    }
    let credentials = aws::credentials_from_environment()?;
    let client = Client::new(target.clone(), credentials);
    println!(
        "SES {} at {} (template {})",
        target.region, target.endpoint, file.name
    );
    match args.command.as_str() {
        "template" => template::create_or_update(&client, &file).map(|()| true),
        _ => template::check(&client, &file),
    }
}
