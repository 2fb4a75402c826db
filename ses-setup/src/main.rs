//! `ses-setup`: what a site owner runs once against their own SES account (or ses-local).
//!
//! - `template` creates the custom verification email template from `templates/`, or updates it
//!   when it exists (idempotent);
//! - `check` asks SES what is still missing before signups can be sent: the template, the From
//!   address's verification (it starts one with `VerifyEmailIdentity` when there is none), and
//!   production access. It exits 1 while anything is missing.
//!
//! Credentials are the standard AWS ones: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (`AWS_SESSION_TOKEN`), else the profile `AWS_PROFILE` (default `default`) of
//! `~/.aws/credentials`. Nothing secret is printed.

mod aws;
mod template;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::aws::{Client, Target};
use crate::template::TemplateFile;

const USAGE: &str =
    "usage: ses-setup <template|check> [--dir DIR] [--region REGION] [--endpoint URL]
                 [--from ADDRESS] [--success-url URL] [--failure-url URL]

  template   create the template in templates/template.toml, or update it if it exists
  check      report what SES still needs: template, From address, production access

  --dir        the template directory (default: templates)
  --region     SES region (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1)
  --endpoint   SES Query endpoint (default: https://email.REGION.amazonaws.com/;
               ses-local: http://127.0.0.1:4579/)
  --from, --success-url, --failure-url   override the template file's values";

struct Args {
    command: String,
    dir: PathBuf,
    target: Target,
    overrides: template::Overrides,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let command = args.next().ok_or("no command")?;
    if command != "template" && command != "check" {
        return Err(format!("unknown command {command}"));
    }
    let (mut dir, mut region, mut endpoint) = (PathBuf::from("templates"), None, None);
    let mut overrides = template::Overrides::default();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => dir = PathBuf::from(value()?),
            "--region" => region = Some(value()?),
            "--endpoint" => endpoint = Some(value()?),
            "--from" => overrides.from = Some(value()?),
            "--success-url" => overrides.success_url = Some(value()?),
            "--failure-url" => overrides.failure_url = Some(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let region = region
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "us-east-1".into());
    let endpoint = endpoint.unwrap_or_else(|| format!("https://email.{region}.amazonaws.com/"));
    Ok(Args {
        command,
        dir,
        target: Target { region, endpoint },
        overrides,
    })
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
    let file = TemplateFile::load(&args.dir, &args.overrides)?;
    let credentials = aws::credentials_from_environment()?;
    let client = Client::new(args.target.clone(), credentials);
    println!(
        "SES {} at {} (template {})",
        args.target.region, args.target.endpoint, file.name
    );
    match args.command.as_str() {
        "template" => template::create_or_update(&client, &file).map(|()| true),
        _ => template::check(&client, &file),
    }
}
