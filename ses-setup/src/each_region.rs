//! Runs `template` or `check` in each target region in turn and prints the report: with one
//! region, the report ses-setup has always printed; with several, one line (`template`) or one
//! block (`check`) per region, its name first, then a summary line naming the regions that fell
//! short (`3 regions: 2 ready, 1 missing something (eu-west-1)`).
//!
//! Invariant: every region is tried, whatever an earlier one answered; the outcome is the worst
//! region's: one that could not be set up or checked, else one missing something.

use signup_verify_ses::config::AwsCredentials;

use crate::aws::{Client, Target};
use crate::template::{self, TemplateFile, Verdict};

/// How a command went over all its regions (the exit code: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done everywhere; for `check`, nothing missing anywhere.
    Done,
    /// `check` found something missing in some region.
    Missing,
    /// Some region could not be set up or checked (its line says why).
    Failed,
}

/// `template` in every region. With one region, an error is returned as before; with several,
/// it is that region's line and the outcome is [`Outcome::Failed`].
pub fn template(
    targets: &[Target],
    credentials: &AwsCredentials,
    file: &TemplateFile,
) -> Result<Outcome, String> {
    if let [target] = targets {
        print_header(target, file);
        let done = template::create_or_update(&client(target, credentials), file)?;
        println!("{done} template {}", file.name);
        return Ok(Outcome::Done);
    }
    print_regions(targets, file);
    let mut failed = Vec::new();
    for target in targets {
        let (region, endpoint) = (&target.region, &target.endpoint);
        match template::create_or_update(&client(target, credentials), file) {
            Ok(done) => println!("{region}: {done} template {} at {endpoint}", file.name),
            Err(e) => {
                println!("{region}: failed at {endpoint}: {e}");
                failed.push(region.as_str());
            }
        }
    }
    let done = targets.len() - failed.len();
    println!(
        "{} regions: {done} done{}",
        targets.len(),
        also(&[("failed", &failed)])
    );
    Ok(if failed.is_empty() {
        Outcome::Done
    } else {
        Outcome::Failed
    })
}

/// `check` in every region, each region's report in turn, then (several regions) the summary.
pub fn check(
    targets: &[Target],
    credentials: &AwsCredentials,
    file: &TemplateFile,
) -> Result<Outcome, String> {
    if let [target] = targets {
        print_header(target, file);
        let verdicts = template::check(&client(target, credentials), file)?;
        let ready = print_verdicts(&verdicts);
        if ready {
            println!("ready: signups can be sent");
        } else {
            println!(
                "not ready in {}: see the lines marked missing",
                target.region
            );
        }
        return Ok(if ready {
            Outcome::Done
        } else {
            Outcome::Missing
        });
    }
    print_regions(targets, file);
    let (mut ready, mut missing, mut unchecked) = (0, Vec::new(), Vec::new());
    for target in targets {
        let region = &target.region;
        println!();
        print_header(target, file);
        match template::check(&client(target, credentials), file) {
            Ok(verdicts) if print_verdicts(&verdicts) => {
                println!("ready in {region}: signups can be sent");
                ready += 1;
            }
            Ok(_) => {
                println!("not ready in {region}: see the lines marked missing");
                missing.push(region.as_str());
            }
            Err(e) => {
                println!("could not check {region}: {e}");
                unchecked.push(region.as_str());
            }
        }
    }
    println!();
    println!(
        "{} regions: {ready} ready{}",
        targets.len(),
        also(&[
            ("missing something", &missing),
            ("could not be checked", &unchecked)
        ])
    );
    Ok(if !unchecked.is_empty() {
        Outcome::Failed
    } else if !missing.is_empty() {
        Outcome::Missing
    } else {
        Outcome::Done
    })
}

fn client(target: &Target, credentials: &AwsCredentials) -> Client {
    Client::new(target.clone(), credentials.clone())
}

fn print_header(target: &Target, file: &TemplateFile) {
    println!(
        "SES {} at {} (template {})",
        target.region, target.endpoint, file.name
    );
}

fn print_regions(targets: &[Target], file: &TemplateFile) {
    let names: Vec<&str> = targets.iter().map(|t| t.region.as_str()).collect();
    println!(
        "SES template {} in {} regions: {}",
        file.name,
        targets.len(),
        names.join(", ")
    );
}

/// Prints each requirement as `ok` or `missing` with its line; true when none is missing.
fn print_verdicts(verdicts: &[Verdict]) -> bool {
    for (ok, line) in verdicts {
        println!("{} {line}", if *ok { "ok     " } else { "missing" });
    }
    verdicts.iter().all(|(ok, _)| *ok)
}

/// `, 1 missing something (eu-west-1)` for each kind of shortfall that some region has.
fn also(shortfalls: &[(&str, &Vec<&str>)]) -> String {
    shortfalls
        .iter()
        .filter(|(_, regions)| !regions.is_empty())
        .map(|(what, regions)| format!(", {} {what} ({})", regions.len(), regions.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_each_kind_of_shortfall_with_its_regions_and_omits_the_empty_ones() {
        let (none, one, two) = (vec![], vec!["eu-west-1"], vec!["us-east-1", "ap-south-1"]);
        assert_eq!(
            also(&[("missing something", &one), ("could not be checked", &none)]),
            ", 1 missing something (eu-west-1)"
        );
        assert_eq!(
            also(&[("missing something", &two), ("could not be checked", &one)]),
            ", 2 missing something (us-east-1, ap-south-1), 1 could not be checked (eu-west-1)"
        );
        assert_eq!(also(&[("failed", &none)]), "");
    }
}
