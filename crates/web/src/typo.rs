//! Typo suggestions: for a domain that takes no mail, the popular mail domain ([`POPULAR`]) it is
//! closest to, within a small edit distance (a wrong, missing, extra or swapped letter: `gmial.com`
//! → `gmail.com`, `hotnail.com` → `hotmail.com`, `gmail.con` → `gmail.com`). Pure.
//!
//! Invariants: only ever asked for a domain that is refused anyway (it takes no mail, or it is
//! throwaway: the list holds typo domains such as `gmial.com`), so a real domain that is merely
//! near a popular one is never "corrected" (the caller's rule); a popular domain never gets a
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
    fn the_distance_counts_a_swap_as_one_edit_and_stops_past_the_limit() {
        assert_eq!(distance("gmial.com", "gmail.com", 2), 1);
        assert_eq!(distance("gmail.com", "gmail.com", 2), 0);
        assert_eq!(distance("gml.com", "gmail.com", 2), 2);
        assert_eq!(distance("abc", "xyz", 2), 3);
        assert_eq!(distance("a", "abcdefgh", 2), 3);
        assert_eq!(distance("", "ab", 2), 2);
    }
}
