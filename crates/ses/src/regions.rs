//! The pool of SES regions a deployment sends through, each mailbox's order among them, and
//! which regions a signup tries ([`RegionPool::attempts`]) while some are paused ([`PauseBook`]);
//! also what a region's name and its endpoint may be (`AWS_REGION`, `SES_ENDPOINT` use them). `SES_REGIONS` is a comma
//! list of regions (default: `AWS_REGION` alone, so nothing changes for one region);
//! `SES_ENDPOINTS`, optional, is a comma list aligned with it (ses-local and tests; `http://` only
//! for loopback). A mailbox's order is rendezvous (highest random weight) hashing over the
//! regions: each region scores the mailbox with a hash of both, and the highest score is its
//! home. Pure.
//!
//! Invariants: the order depends only on the mailbox and the set of region names (not their
//! order in `SES_REGIONS`, not the endpoints), so every isolate and every deploy agrees; adding
//! a region moves only the mailboxes whose new home it is (about 1/n of them), and removing one
//! moves only that region's mailboxes, each to its next region in order.

use sha2::{Digest, Sha256};
use url::Url;

use signup_verify_domain::settings::{parse_service_url, ConfigError, Vars};

/// Keeps this hash apart from every other use of SHA-256 here.
const RENDEZVOUS_LABEL: &[u8] = b"signup-verify/v1/region-rendezvous\0";

/// One region of the pool and where its Query API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub name: String,
    pub endpoint: Url,
}

/// The regions, each once, in the order `SES_REGIONS` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPool {
    regions: Vec<Region>,
}

impl RegionPool {
    /// `SES_REGIONS` and `SES_ENDPOINTS`; without `SES_REGIONS`, `region` (`AWS_REGION`) at
    /// `endpoint` (`SES_ENDPOINT` or its default) alone.
    pub fn from_vars(vars: &Vars, region: &str, endpoint: &Url) -> Result<Self, ConfigError> {
        let bad = |variable, problem| ConfigError { variable, problem };
        let Some(list) = vars.get("SES_REGIONS") else {
            if vars.get("SES_ENDPOINTS").is_some() {
                return Err(bad("SES_ENDPOINTS", "is set without SES_REGIONS"));
            }
            return Ok(Self {
                regions: vec![Region {
                    name: region.to_string(),
                    endpoint: endpoint.clone(),
                }],
            });
        };
        let names: Vec<&str> = list.split(',').map(str::trim).collect();
        if names.iter().any(|n| !is_region_name(n)) {
            return Err(bad(
                "SES_REGIONS",
                "must be a comma list of region names like us-east-1",
            ));
        }
        if names.len() > 16 {
            return Err(bad("SES_REGIONS", "may name at most 16 regions"));
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(bad("SES_REGIONS", "names a region twice"));
            }
        }
        let endpoints: Vec<Url> = match vars.get("SES_ENDPOINTS") {
            None => names
                .iter()
                .map(|name| {
                    Url::parse(&format!("https://email.{name}.amazonaws.com/"))
                        .map_err(|_| bad("SES_REGIONS", "does not make a valid endpoint URL"))
                })
                .collect::<Result<_, _>>()?,
            Some(raw) => {
                let endpoints = raw
                    .split(',')
                    .map(|e| parse_ses_endpoint("SES_ENDPOINTS", e.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                if endpoints.len() != names.len() {
                    return Err(bad(
                        "SES_ENDPOINTS",
                        "must list one endpoint for each region of SES_REGIONS, in the same order",
                    ));
                }
                endpoints
            }
        };
        Ok(Self {
            regions: names
                .into_iter()
                .zip(endpoints)
                .map(|(name, endpoint)| Region {
                    name: name.to_string(),
                    endpoint,
                })
                .collect(),
        })
    }

    /// The regions, as configured.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region named `name`, if the pool has it (a token names the region that holds its
    /// signup).
    pub fn get(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// Every region in `mailbox`'s rendezvous order: its home first.
    pub fn order(&self, mailbox: &str) -> Vec<&Region> {
        let mut scored: Vec<(u64, &Region)> = self
            .regions
            .iter()
            .map(|region| (score(&region.name, mailbox), region))
            .collect();
        // Highest score first; a tie (2^-64) goes to the smaller name, the same everywhere.
        scored.sort_by(|(a, ra), (b, rb)| b.cmp(a).then_with(|| ra.name.cmp(&rb.name)));
        scored.into_iter().map(|(_, region)| region).collect()
    }

    /// Where a new signup of `mailbox` goes: the first region in its order that is not
    /// `paused` (its home, unless the home is paused: then the next healthy one, the same for
    /// every signup of the mailbox while the pause lasts); `None` when every region is paused.
    /// A paused region's queued signups are handed over by the same rule.
    pub fn route(&self, mailbox: &str, paused: impl Fn(&Region) -> bool) -> Option<&Region> {
        self.order(mailbox)
            .into_iter()
            .find(|region| !paused(region))
    }

    /// The regions a new signup of `mailbox` tries, in turn, with whether each may decline it
    /// because it is paused (`true`: another region follows). Always the home first, paused or
    /// not, so that a mailbox queued there is answered there (never queued twice); then the
    /// other regions of its order that `paused` does not hold as paused at `now_ms`. The last
    /// must take the signup (a paused one queues it until its pause ends: nothing is lost).
    pub fn attempts(&self, mailbox: &str, paused: &PauseBook, now_ms: u64) -> Vec<(&Region, bool)> {
        let order = self.order(mailbox);
        let mut tries: Vec<&Region> = order.iter().take(1).copied().collect();
        tries.extend(
            order
                .iter()
                .skip(1)
                .filter(|region| !paused.is_paused(&region.name, now_ms)),
        );
        let last = tries.len().saturating_sub(1);
        tries
            .into_iter()
            .enumerate()
            .map(|(i, region)| (region, i < last))
            .collect()
    }

    /// The share of `DAILY_SEND_BUDGET` (`total`, for the whole pool) the gate of `region`
    /// keeps: an even share (rendezvous spreads mailboxes evenly), the remainder one each to the
    /// first regions by name, so the shares add up to `total` exactly; 0 (no budget) stays 0.
    /// A region outside the pool takes no new signups: no share (what it still holds was
    /// counted when it came).
    pub fn budget_share(&self, total: u64, region: &str) -> u64 {
        let mut names: Vec<&str> = self.regions.iter().map(|r| r.name.as_str()).collect();
        names.sort_unstable();
        let Some(rank) = names.iter().position(|name| *name == region) else {
            return 0;
        };
        let n = names.len() as u64;
        total / n + u64::from((rank as u64) < total % n)
    }

    /// `mailbox`'s home region.
    pub fn home(&self, mailbox: &str) -> &Region {
        self.regions
            .iter()
            .max_by(|a, b| {
                score(&a.name, mailbox)
                    .cmp(&score(&b.name, mailbox))
                    .then_with(|| b.name.cmp(&a.name))
            })
            .unwrap_or(&self.regions[0])
    }
}

/// The regions that answered "paused" to a signup, and until when: an isolate's memory, so that
/// the next signups go straight to their next region (one region's entry at most: bounded by
/// the pool's 16 regions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PauseBook {
    until: Vec<(String, u64)>,
}

impl PauseBook {
    /// `region` said it is paused until `until_ms`.
    pub fn mark(&mut self, region: &str, until_ms: u64) {
        match self.until.iter_mut().find(|(name, _)| name == region) {
            Some((_, until)) => *until = until_ms,
            None => self.until.push((region.to_string(), until_ms)),
        }
    }

    pub fn is_paused(&self, region: &str, now_ms: u64) -> bool {
        self.until
            .iter()
            .any(|(name, until)| name == region && *until > now_ms)
    }
}

/// The region's weight for the mailbox: 64 bits of a labelled SHA-256 of both.
fn score(region: &str, mailbox: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(RENDEZVOUS_LABEL)
        .chain_update(region.as_bytes())
        .chain_update([0])
        .chain_update(mailbox.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

pub(crate) fn is_region_name(region: &str) -> bool {
    region.len() <= 32
        && region.split('-').count() >= 3
        && region.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// `SES_ENDPOINT` (or one of `SES_ENDPOINTS`, named by `variable`): a service URL whose path is
/// plain (unreserved characters between slashes, no `.` or `..` segment), so that it is its own
/// SigV4 canonical path.
pub(crate) fn parse_ses_endpoint(variable: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = parse_service_url(variable, raw)?;
    let plain_segment = |segment: &str| {
        !matches!(segment, "." | "..")
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    let segments: Vec<&str> = url.path().split('/').skip(1).collect();
    let (last, inner) = segments.split_last().unwrap_or((&"", &[]));
    if inner.iter().all(|s| !s.is_empty() && plain_segment(s)) && plain_segment(last) {
        Ok(url)
    } else {
        Err(ConfigError {
            variable,
            problem: "must have a plain path: letters, digits and - . _ ~ between slashes",
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn pool(pairs: &[(&str, &str)]) -> Result<RegionPool, ConfigError> {
        let lookup = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let default = Url::parse("https://email.us-east-1.amazonaws.com/").expect("url");
        RegionPool::from_vars(&Vars::new(&lookup), "us-east-1", &default)
    }

    fn names(p: &RegionPool, mailbox: &str) -> Vec<String> {
        p.order(mailbox).iter().map(|r| r.name.clone()).collect()
    }

    fn mailboxes(n: usize) -> impl Iterator<Item = String> {
        (0..n).map(|i| format!("person{i}@example{}.com", i % 97))
    }

    #[test]
    fn without_ses_regions_the_pool_is_aws_region_alone() {
        let p = pool(&[]).expect("default");
        assert_eq!(p.regions().len(), 1);
        assert_eq!(p.home("a@b.io").name, "us-east-1");
        assert_eq!(
            pool(&[("SES_ENDPOINTS", "http://127.0.0.1:1/")])
                .expect_err("alone")
                .variable,
            "SES_ENDPOINTS"
        );
    }

    #[test]
    fn regions_and_their_endpoints_are_parsed_and_checked() {
        let p = pool(&[
            ("SES_REGIONS", "us-east-1, eu-west-1,ap-south-1"),
            (
                "SES_ENDPOINTS",
                "http://127.0.0.1:1/,http://127.0.0.1:2/,http://localhost:3/",
            ),
        ])
        .expect("valid");
        assert_eq!(
            p.get("eu-west-1").map(|r| r.endpoint.as_str()),
            Some("http://127.0.0.1:2/")
        );
        let p = pool(&[("SES_REGIONS", "eu-west-1,us-west-2")]).expect("valid");
        assert_eq!(
            p.get("us-west-2").map(|r| r.endpoint.as_str()),
            Some("https://email.us-west-2.amazonaws.com/")
        );
        for (pairs, variable) in [
            (&[("SES_REGIONS", "us-east-1,Europe")][..], "SES_REGIONS"),
            (&[("SES_REGIONS", "us-east-1,us-east-1")], "SES_REGIONS"),
            (&[("SES_REGIONS", "us-east-1,")], "SES_REGIONS"),
            (
                &[
                    ("SES_REGIONS", "us-east-1,eu-west-1"),
                    ("SES_ENDPOINTS", "http://127.0.0.1:1/"),
                ],
                "SES_ENDPOINTS",
            ),
            (
                &[
                    ("SES_REGIONS", "us-east-1"),
                    ("SES_ENDPOINTS", "http://ses.example/"),
                ],
                "SES_ENDPOINTS",
            ),
        ] {
            assert_eq!(
                pool(pairs).expect_err("refused").variable,
                variable,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn a_mailbox_always_has_the_same_order_whatever_order_the_regions_are_listed_in() {
        let a = pool(&[("SES_REGIONS", "us-east-1,eu-west-1,ap-south-1")]).expect("valid");
        let b = pool(&[("SES_REGIONS", "ap-south-1,us-east-1,eu-west-1")]).expect("valid");
        for mailbox in mailboxes(500) {
            assert_eq!(names(&a, &mailbox), names(&b, &mailbox));
            assert_eq!(a.home(&mailbox).name, names(&a, &mailbox)[0]);
        }
    }

    #[test]
    fn ten_thousand_mailboxes_spread_over_three_regions_within_two_percent() {
        let p = pool(&[("SES_REGIONS", "us-east-1,eu-west-1,ap-south-1")]).expect("valid");
        let mut homes: BTreeMap<String, usize> = BTreeMap::new();
        for mailbox in mailboxes(10_000) {
            *homes.entry(p.home(&mailbox).name.clone()).or_default() += 1;
        }
        for (region, n) in &homes {
            assert!((3_133..=3_533).contains(n), "{region}: {n} of 10,000");
        }
        assert_eq!(homes.len(), 3);
    }

    #[test]
    fn a_paused_home_spills_to_the_next_healthy_region_in_the_mailboxs_order() {
        let p = pool(&[("SES_REGIONS", "us-east-1,eu-west-1,ap-south-1")]).expect("valid");
        for mailbox in mailboxes(300) {
            let order = names(&p, &mailbox);
            let none_paused = p.route(&mailbox, |_| false).map(|r| r.name.clone());
            assert_eq!(none_paused.as_ref(), Some(&order[0]), "sticky to its home");
            let home_paused = p
                .route(&mailbox, |r| r.name == order[0])
                .map(|r| r.name.clone());
            assert_eq!(home_paused.as_ref(), Some(&order[1]));
            let two_paused = p
                .route(&mailbox, |r| r.name != order[2])
                .map(|r| r.name.clone());
            assert_eq!(two_paused.as_ref(), Some(&order[2]));
            assert_eq!(p.route(&mailbox, |_| true), None);
        }
    }

    #[test]
    fn a_signup_tries_its_home_first_then_its_healthy_regions_and_only_the_last_must_take_it() {
        let p = pool(&[("SES_REGIONS", "us-east-1,eu-west-1,ap-south-1")]).expect("valid");
        let mailbox = "someone@example.com";
        let order = names(&p, mailbox);
        let tried = |book: &PauseBook, now| -> Vec<(String, bool)> {
            p.attempts(mailbox, book, now)
                .into_iter()
                .map(|(r, may_decline)| (r.name.clone(), may_decline))
                .collect()
        };
        let mut book = PauseBook::default();
        assert_eq!(
            tried(&book, 0),
            vec![
                (order[0].clone(), true),
                (order[1].clone(), true),
                (order[2].clone(), false)
            ]
        );
        // A home known to be paused is still asked first: it may hold the mailbox queued.
        book.mark(&order[0], 5_000);
        assert_eq!(tried(&book, 4_999), tried(&PauseBook::default(), 0));
        // A paused region after it is skipped, until its pause ends.
        book.mark(&order[1], 5_000);
        assert_eq!(
            tried(&book, 4_999),
            vec![(order[0].clone(), true), (order[2].clone(), false)]
        );
        assert_eq!(tried(&book, 5_000).len(), 3);
        book.mark(&order[2], 9_000);
        assert_eq!(
            tried(&book, 4_999),
            vec![(order[0].clone(), false)],
            "every other region paused: the home takes it, and may not decline"
        );
        let one = pool(&[]).expect("default");
        assert_eq!(
            one.attempts(mailbox, &PauseBook::default(), 0)
                .into_iter()
                .map(|(r, d)| (r.name.clone(), d))
                .collect::<Vec<_>>(),
            vec![("us-east-1".to_string(), false)],
            "one region never declines"
        );
    }

    #[test]
    fn the_daily_budget_is_for_the_pool_and_each_region_takes_an_even_share() {
        let three = pool(&[("SES_REGIONS", "us-east-1,eu-west-1,ap-south-1")]).expect("valid");
        let shares =
            |total| ["ap-south-1", "eu-west-1", "us-east-1"].map(|r| three.budget_share(total, r));
        assert_eq!(shares(3_000), [1_000, 1_000, 1_000]);
        assert_eq!(shares(1_000), [334, 333, 333], "adding up to the budget");
        assert_eq!(shares(0), [0, 0, 0], "no budget stays none");
        assert_eq!(
            pool(&[]).expect("one").budget_share(1_000, "us-east-1"),
            1_000
        );
        assert_eq!(
            three.budget_share(1_000, "sa-east-1"),
            0,
            "outside the pool"
        );
    }

    #[test]
    fn adding_a_region_moves_only_the_mailboxes_it_becomes_home_to() {
        let three = pool(&[("SES_REGIONS", "us-east-1,eu-west-1,ap-south-1")]).expect("valid");
        let four =
            pool(&[("SES_REGIONS", "us-east-1,eu-west-1,ap-south-1,sa-east-1")]).expect("valid");
        let mut moved = 0;
        for mailbox in mailboxes(10_000) {
            let (before, after) = (three.home(&mailbox), four.home(&mailbox));
            if before != after {
                assert_eq!(
                    after.name, "sa-east-1",
                    "{mailbox} moved between old regions"
                );
                moved += 1;
            }
            // The rest of the order is the old order.
            let rest: Vec<String> = names(&four, &mailbox)
                .into_iter()
                .filter(|n| n != "sa-east-1")
                .collect();
            assert_eq!(rest, names(&three, &mailbox));
        }
        assert!(
            (2_300..=2_700).contains(&moved),
            "{moved} of 10,000 moved (1/4 expected)"
        );
    }
}
