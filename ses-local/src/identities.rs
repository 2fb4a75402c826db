//! Identities (email addresses and domains) and their verification status: who may send, what a
//! verification link does to an identity, and the identity actions: get attributes, delete and
//! list.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mail::LinkOutcome;
use crate::query::{next_token_xml, sender, Failure, Page, Params};
use crate::xml::escape;

/// SES answers at most this many identities per `GetIdentityVerificationAttributes`.
const MAX_IDENTITIES_PER_CALL: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerificationStatus {
    Pending,
    Success,
    Failed,
}

impl VerificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Success => "Success",
            Self::Failed => "Failed",
        }
    }
}

/// Every identity SES knows, with its status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Identities(BTreeMap<String, VerificationStatus>);

/// `FromEmailAddressNotVerified` for `address` in `region`.
pub fn not_verified(region: &str, address: &str) -> Failure {
    sender(
        "FromEmailAddressNotVerified",
        format!(
            "Email address is not verified. The following identities failed the check in region {}: {address}",
            region.to_uppercase()
        ),
    )
}

impl Identities {
    pub fn status(&self, identity: &str) -> Option<VerificationStatus> {
        self.0.get(identity).copied()
    }

    /// Marks `identity` verified (the seed file's `verified_identities`).
    pub fn verify(&mut self, identity: &str) {
        self.0
            .insert(identity.to_string(), VerificationStatus::Success);
    }

    /// Whether mail may be sent from `address`: the address itself or its domain is verified.
    pub fn is_verified_sender(&self, address: &str) -> bool {
        let verified = |identity: &str| self.status(identity) == Some(VerificationStatus::Success);
        verified(address)
            || address
                .rsplit_once('@')
                .is_some_and(|(_, domain)| verified(&domain.to_ascii_lowercase()))
    }

    /// A new or failed identity becomes Pending; a verified one stays verified. A new one past
    /// `max_identities` is refused as SES refuses it (`LimitExceeded`).
    pub fn add_pending(&mut self, identity: &str, max_identities: usize) -> Result<(), Failure> {
        if !self.0.contains_key(identity) && self.0.len() >= max_identities {
            return Err(sender(
                "LimitExceeded",
                format!("Maximum number of identities ({max_identities}) reached for this region."),
            ));
        }
        self.mark_pending(identity);
        Ok(())
    }

    /// A new or failed identity becomes Pending; a verified one stays verified.
    pub fn mark_pending(&mut self, identity: &str) {
        let status = self
            .0
            .entry(identity.to_string())
            .or_insert(VerificationStatus::Pending);
        if *status == VerificationStatus::Failed {
            *status = VerificationStatus::Pending;
        }
    }

    /// What opening a verification link does to its identity.
    pub fn apply_link(&mut self, outcome: &LinkOutcome) {
        match outcome {
            LinkOutcome::Verified { identity, .. } => self.verify(identity),
            // Only a Pending identity fails; one that was never created (`--identity-on click`)
            // or was deleted since is not brought back.
            LinkOutcome::Expired { identity, .. } => {
                if let Some(status) = self.0.get_mut(identity) {
                    if *status == VerificationStatus::Pending {
                        *status = VerificationStatus::Failed;
                    }
                }
            }
            LinkOutcome::Invalid { .. } => {}
        }
    }

    pub fn delete(&mut self, p: &Params) -> Result<(), Failure> {
        self.0.remove(p.require("Identity")?);
        Ok(())
    }

    /// `GetIdentityVerificationAttributes`' result: unknown identities are left out.
    pub fn attributes_xml(&self, p: &Params) -> Result<String, Failure> {
        let identities = p.members("Identities");
        if identities.len() > MAX_IDENTITIES_PER_CALL {
            return Err(sender(
                "InvalidParameterValue",
                format!("At most {MAX_IDENTITIES_PER_CALL} identities may be requested at once."),
            ));
        }
        let entries: String = identities
            .iter()
            .filter_map(|identity| self.status(identity).map(|status| (identity, status)))
            .map(|(identity, status)| {
                format!(
                    "\n      <entry>\n        <key>{}</key>\n        <value>\n          <VerificationStatus>{}</VerificationStatus>\n        </value>\n      </entry>",
                    escape(identity),
                    status.as_str()
                )
            })
            .collect();
        Ok(format!(
            "\n    <VerificationAttributes>{entries}\n    </VerificationAttributes>\n  "
        ))
    }

    /// `ListIdentities`' result, by type, paged.
    pub fn list_xml(&self, p: &Params) -> Result<String, Failure> {
        let kind = p.get("IdentityType");
        if kind.is_some_and(|k| k != "EmailAddress" && k != "Domain") {
            return Err(sender(
                "InvalidParameterValue",
                "IdentityType must be EmailAddress or Domain.",
            ));
        }
        let page = Page::from_params(p, "MaxItems", 1..=1000, 1000)?;
        let wanted = |identity: &str| match kind {
            Some("EmailAddress") => identity.contains('@'),
            Some("Domain") => !identity.contains('@'),
            _ => true,
        };
        let mut identities = self
            .0
            .range(page.start..)
            .map(|(i, _)| i)
            .filter(|i| wanted(i));
        let members: String = identities
            .by_ref()
            .take(page.size)
            .map(|i| format!("\n      <member>{}</member>", escape(i)))
            .collect();
        let next = identities
            .next()
            .map(|i| next_token_xml(i))
            .unwrap_or_default();
        Ok(format!(
            "\n    <Identities>{members}\n    </Identities>{next}\n  "
        ))
    }
}
