//! Typo suggestions: for a domain that takes no mail, the popular mail domain ([`POPULAR`]) it is
//! closest to, within a small edit distance (a wrong, missing, extra or swapped letter: `gmial.com`
//! → `gmail.com`, `hotnail.com` → `hotmail.com`, `gmail.con` → `gmail.com`). Pure.
//!
//! Invariants: only ever asked for a domain that is refused anyway (the caller's rule), so a real
//! domain that is merely near a popular one is never "corrected"; a domain on the throwaway list
//! gets one only for a slip of a popular one ([`listed_suggestion`]): the list holds typo domains
//! (`gmial.com`) beside real throwaway services (`tmail.com`); a popular domain never gets a
//! suggestion (`gmail.com` is one edit from `mail.com`); at most [`max_distance`] edits, and 1 for short domains, where
//! two edits reach too many unrelated names.

use signup_verify_domain::email::EmailAddress;

/// The mail domains people mistype most, most used first (ties go to the earlier one): the
/// large free providers, and the regional ones the issue names.
pub const POPULAR: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "icloud.com",
    "aol.com",
    "live.com",
    "msn.com",
    "proton.me",
    "protonmail.com",
    "gmx.de",
    "gmx.net",
    "gmx.com",
    "web.de",
    "googlemail.com",
    "yahoo.co.uk",
    "hotmail.co.uk",
    "me.com",
    "mail.com",
    "yandex.ru",
    "mail.ru",
    "t-online.de",
    "orange.fr",
    "comcast.net",
];

/// The edits allowed for a domain of `len` characters.
pub fn max_distance(len: usize) -> usize {
    if len <= 8 {
        1
    } else {
        2
    }
}

/// `local@popular` for the typed address, when its domain is near a popular one.
pub fn suggestion(email: &EmailAddress) -> Option<String> {
    let (local, domain) = (email.local_part(), email.domain());
    if POPULAR.contains(&domain) {
        return None;
    }
    let limit = max_distance(domain.len());
    POPULAR
        .iter()
        .map(|popular| (distance(domain, popular, limit), *popular))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, popular)| format!("{local}@{popular}"))
}

/// The suggestion for a domain refused as throwaway (on the list, or sending its mail to a
/// listed host): the list holds typo domains (`gmial.com`) beside real throwaway services
/// (`tmail.com`, `yopmail.com`), so only one swapped, dropped or doubled letter away from a
/// popular domain, never at its first letter: a throwaway service one or two letters from a
/// popular name is not "corrected" into a stranger's inbox.
pub fn listed_suggestion(email: &EmailAddress) -> Option<String> {
    let (local, domain) = (email.local_part(), email.domain());
    POPULAR
        .iter()
        .find(|popular| is_slip(domain.as_bytes(), popular.as_bytes()))
        .map(|popular| format!("{local}@{popular}"))
}

/// Whether `typed` is `meant` with two neighbours swapped, one letter dropped, or one letter
/// doubled, at any place but the first letter.
fn is_slip(typed: &[u8], meant: &[u8]) -> bool {
    let first_difference = |a: &[u8], b: &[u8]| a.iter().zip(b).position(|(x, y)| x != y);
    match typed.len() as isize - meant.len() as isize {
        0 => match first_difference(typed, meant) {
            Some(i) if i >= 1 && i + 1 < typed.len() => {
                typed[i] == meant[i + 1]
                    && typed[i + 1] == meant[i]
                    && typed[i + 2..] == meant[i + 2..]
            }
            _ => false,
        },
        1 => {
            let i = first_difference(typed, meant).unwrap_or(meant.len());
            i >= 1 && typed[i] == typed[i - 1] && typed[i + 1..] == meant[i..]
        }
        -1 => {
            let i = first_difference(typed, meant).unwrap_or(typed.len());
            i >= 1 && typed[i..] == meant[i + 1..]
        }
        _ => false,
    }
}

/// The optimal string alignment distance between `a` and `b` (insertions, deletions,
/// substitutions and swaps of neighbours, each 1), or `limit + 1` once it must exceed `limit`.
fn distance(a: &str, b: &str, limit: usize) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    // Three rows of the dynamic programme: i-2, i-1 and i.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        if current.iter().min().is_some_and(|&m| m > limit) {
            return limit + 1;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()].min(limit + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suggest(address: &str) -> Option<String> {
        suggestion(&EmailAddress::parse(address).expect("valid"))
    }

    #[test]
    fn common_typos_of_popular_domains_are_corrected_keeping_the_local_part() {
        for (typed, meant) in [
            ("Jane.Doe@gmial.com", "Jane.Doe@gmail.com"),
            ("jane@gmai.com", "jane@gmail.com"),
            ("jane@gmaill.com", "jane@gmail.com"),
            ("jane@gmail.con", "jane@gmail.com"),
            ("jane@hotnail.com", "jane@hotmail.com"),
            ("jane@hotmial.com", "jane@hotmail.com"),
            ("jane@yaho.com", "jane@yahoo.com"),
            ("jane@outlok.com", "jane@outlook.com"),
            ("jane@iclod.com", "jane@icloud.com"),
            ("jane@protonmail.co", "jane@protonmail.com"),
            ("jane@GMIAL.COM", "jane@gmail.com"),
        ] {
            assert_eq!(suggest(typed).as_deref(), Some(meant), "{typed}");
        }
    }

    #[test]
    fn a_popular_domain_itself_or_a_distant_one_gets_no_suggestion() {
        for typed in [
            "jane@gmail.com",
            "jane@example.com",
            "jane@company.internal",
            "jane@gnome.org",
            // Short domains allow one edit only: two would reach unrelated names.
            "jane@gmx.xy",
        ] {
            assert_eq!(suggest(typed), None, "{typed}");
        }
    }

    #[test]
    fn a_listed_domain_gets_a_suggestion_only_for_a_slip_of_a_popular_one() {
        let listed =
            |address: &str| listed_suggestion(&EmailAddress::parse(address).expect("valid"));
        assert_eq!(listed("jane@gmial.com").as_deref(), Some("jane@gmail.com"));
        assert_eq!(
            listed("jane@hotmai.com").as_deref(),
            Some("jane@hotmail.com")
        );
        assert_eq!(
            listed("jane@hotmial.com").as_deref(),
            Some("jane@hotmail.com")
        );
        assert_eq!(listed("jane@gmaill.com").as_deref(), Some("jane@gmail.com"));
        assert_eq!(listed("jane@gmmail.com").as_deref(), Some("jane@gmail.com"));
        // An added letter that doubles nothing is no slip.
        assert_eq!(listed("jane@gmaila.com"), None);
        // Real throwaway services near a popular name: never sent to a stranger's inbox.
        for service in [
            "yopmail.com",
            "tmail.com",
            "amail.com",
            "cmail.com",
            "e-mail.com",
            "zoemail.com",
            "mailinator.com",
        ] {
            assert_eq!(listed(&format!("jane@{service}")), None, "{service}");
        }
    }

    #[test]
    fn only_the_listed_typo_domains_a_slip_away_get_a_suggestion() {
        // Over the whole vendored list: exactly the slips, none at a first letter.
        let suggested: Vec<&str> = crate::disposable::BLOCKLIST
            .lines()
            .filter(|domain| {
                // A few entries are no valid mail domain (a label ending in `-`): never typed.
                EmailAddress::parse(&format!("x@{domain}"))
                    .is_ok_and(|email| listed_suggestion(&email).is_some())
            })
            .collect();
        assert_eq!(suggested, ["gmial.com", "hotmai.com", "hotmial.com"]);
    }

    #[test]
    fn the_distance_counts_a_swap_as_one_edit_and_stops_past_the_limit() {
        assert_eq!(distance("gmial.com", "gmail.com", 2), 1);
        assert_eq!(distance("gmail.com", "gmail.com", 2), 0);
        assert_eq!(distance("gml.com", "gmail.com", 2), 2);
        assert_eq!(distance("abc", "xyz", 2), 3);
        assert_eq!(distance("a", "abcdefgh", 2), 3);
        assert_eq!(distance("", "ab", 2), 2);
    }
}
