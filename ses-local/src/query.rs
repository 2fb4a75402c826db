//! What every Query API action shares: the decoded parameters, the SES error an action fails
//! with before it is put in its envelope, paging (`MaxResults`/`MaxItems` and `NextToken`), and
//! SES's loose address check.

/// The decoded form parameters of one call.
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &str) -> Result<&str, Failure> {
        self.get(name).ok_or_else(|| {
            sender(
                "MissingParameter",
                format!("The request must contain the parameter {name}."),
            )
        })
    }

    /// `Prefix.member.1`, `Prefix.member.2`, … in order.
    pub fn members(&self, prefix: &str) -> Vec<&str> {
        (1..)
            .map_while(|i| self.get(&format!("{prefix}.member.{i}")))
            .collect()
    }
}

/// An SES error before it is put in its envelope.
#[derive(Debug)]
pub struct Failure {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

/// A `Sender` (caller's) error: HTTP 400.
pub fn sender(code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        status: 400,
        code,
        message: message.into(),
    }
}

/// One page of a listing: how many, and the key to start from.
pub struct Page {
    pub size: usize,
    pub start: String,
}

impl Page {
    /// From a size parameter (`size_param`, in `range`, else `default`) and `NextToken`.
    pub fn from_params(
        p: &Params,
        size_param: &str,
        range: std::ops::RangeInclusive<usize>,
        default: usize,
    ) -> Result<Self, Failure> {
        let size = match p.get(size_param) {
            None => default,
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    sender(
                        "InvalidParameterValue",
                        format!(
                            "{size_param} must be between {} and {}.",
                            range.start(),
                            range.end()
                        ),
                    )
                })?,
        };
        let start = match p.get("NextToken") {
            None => String::new(),
            Some(token) => hex::decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| sender("InvalidParameterValue", "The NextToken is not valid."))?,
        };
        Ok(Self { size, start })
    }
}

/// An opaque token naming the first item of the next page.
pub fn next_token_xml(next_key: &str) -> String {
    format!("\n    <NextToken>{}</NextToken>", hex::encode(next_key))
}

/// SES's own address check is loose: one `@`, something on each side, a dot in the domain, no spaces.
pub fn check_address(email: &str) -> Result<(), Failure> {
    if email.is_empty() {
        return Err(sender(
            "InvalidParameterValue",
            "Email address not specified.",
        ));
    }
    let plausible = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    }) && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if plausible {
        Ok(())
    } else {
        Err(sender(
            "InvalidParameterValue",
            format!("Invalid email address<{email}>."),
        ))
    }
}
