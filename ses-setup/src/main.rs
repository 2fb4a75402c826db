//! `ses-setup`: what a site owner runs once against their own SES account (or ses-local), in
//! every region the Worker sends through.
//!
//! - `template` creates the custom verification email template from `templates/`, or updates it
//!   when it exists (idempotent), in each region;
//! - `check` asks SES, in each region, what is still missing before signups can be sent there:
//!   the template, the From address's verification (it starts one with `VerifyEmailIdentity`
//!   when there is none), and production access. It exits 1 while anything is missing anywhere.
//!
//! With `--wrangler-toml FILE` (what `make ses-template`, `make ses-check` and `make deploy` pass),
//! the regions, their endpoints and the template name are the Worker's own, from that file's
//! `[vars]` (or `[env.NAME.vars]` with `--wrangler-env NAME`): every region of its pool
//! (`SES_REGIONS`/`SES_ENDPOINTS`, else `AWS_REGION` at `SES_ENDPOINT`). An `AWS_REGION` in the
//! environment that is not one of them is then an error, not another region; the template file
//! must name the template `SES_TEMPLATE_NAME` names. `--region` takes a comma list too.
//! Which regions: [`targets`]; running and reporting in each: [`each_region`].
//!
//! Credentials are the standard AWS ones: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (`AWS_SESSION_TOKEN`), else the profile `AWS_PROFILE` (default `default`) of
//! `~/.aws/credentials`; the same for every region. Nothing secret is printed.

mod aws;
mod each_region;
mod targets;
mod template;
mod wrangler;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::each_region::Outcome;
use crate::template::TemplateFile;

const USAGE: &str =
    "usage: ses-setup <template|check> [--dir DIR] [--wrangler-toml FILE [--wrangler-env NAME]]
                 [--region REGION[,REGION...]] [--endpoint URL[,URL...]]
                 [--from ADDRESS] [--success-url URL] [--failure-url URL]

  template   create the template in templates/template.toml, or update it if it exists, in
             each region; one line per region, then a summary (exit 2 if any region failed;
             every region is still tried)
  check      report what SES still needs in each region: template, From address, production
             access; a report per region, then `N regions: R ready, M missing something
             (REGION, ...)` (exit 1 while anything is missing in any region)

  --dir        the template directory (default: templates)
  --wrangler-toml   the Worker's wrangler.toml: the template name and every region of the
               Worker's pool, each at its endpoint, from its [vars] as the Worker reads them
               (SES_TEMPLATE_NAME; SES_REGIONS and SES_ENDPOINTS, else AWS_REGION and
               SES_ENDPOINT). An AWS_REGION in the environment must be the Worker's region
               (one region) or one of them (several; all are still acted on)
  --wrangler-env    with --wrangler-toml: that file's [env.NAME.vars] instead
  --region     SES region, or a comma list of regions, to act on instead (default: the
               --wrangler-toml pool, else AWS_REGION, AWS_DEFAULT_REGION, else us-east-1)
  --endpoint   SES Query endpoint, or a comma list with one per region in the same order
               (default: the pool's endpoint for a region of --wrangler-toml's pool, else
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

fn main() -> ExitCode {
    if matches!(
        std::env::args().nth(1).as_deref(),
        Some("--help" | "-h" | "help")
    ) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("ses-setup: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Missing) => ExitCode::from(1),
        Ok(Outcome::Failed) => ExitCode::from(2),
        Err(e) => {
            eprintln!("ses-setup: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the command in every target region; what it came to.
fn run(args: &Args) -> Result<Outcome, String> {
    let worker = match &args.wrangler_toml {
        Some(path) => Some(wrangler::worker_ses(path, args.wrangler_env.as_deref())?),
        None => None,
    };
    let flags = targets::Flags {
        region: args.region.as_deref(),
        endpoint: args.endpoint.as_deref(),
    };
    let targets = targets::resolve(
        &flags,
        worker.as_ref().zip(args.wrangler_toml.as_deref()),
        |name| std::env::var(name).ok(),
    )?;
    let file = TemplateFile::load(&args.dir, &args.overrides)?;
    if let Some(worker) = worker.filter(|w| w.template_name != file.name) {
        return Err(format!(
            "{} names the template {}, but the Worker sends {} (SES_TEMPLATE_NAME in \
             wrangler.toml): make them the same",
            args.dir.join("template.toml").display(),
            file.name,
            worker.template_name
        ));
    }
    let credentials = aws::credentials_from_environment()?;
    match args.command.as_str() {
        "template" => each_region::template(&targets, &credentials, &file),
        _ => each_region::check(&targets, &credentials, &file),
    }
}
