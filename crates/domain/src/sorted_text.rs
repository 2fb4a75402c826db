//! Lookups in the text tables embedded in the Worker (the public suffixes of [`crate::mailbox`],
//! the throwaway list of `signup-verify-web`): one entry per line, lines sorted bytewise, each
//! keyed by its first word. A lookup is a binary search of the text itself, each probe widened
//! to the line it falls in: no index is built and nothing is allocated. Pure.
//!
//! Invariant: given a table whose lines are sorted by their first word (each table's tests check
//! its own), [`find_line`] finds the line of `key` if there is one, in O(log n) probes.

use std::cmp::Ordering;

/// The line of `sorted` whose first word (up to a space) is `key`.
pub fn find_line<'a>(sorted: &'a str, key: &str) -> Option<&'a str> {
    let bytes = sorted.as_bytes();
    // Lines wholly inside `lo..hi` are still candidates; `lo` is always a line's start.
    let (mut lo, mut hi) = (0, bytes.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = bytes[..mid]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
            .max(lo);
        let end = bytes[mid..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| mid + i);
        let line = &bytes[start..end];
        let word = line
            .iter()
            .position(|&b| b == b' ')
            .map_or(line, |space| &line[..space]);
        match word.cmp(key.as_bytes()) {
            Ordering::Equal => return sorted.get(start..end),
            Ordering::Less => lo = end + 1,
            Ordering::Greater => hi = start,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_found_by_its_first_word_and_nothing_else_is() {
        let table = "ac com edu\nad nom\nae ac co\naero res\naf com\nzw *";
        for line in table.lines() {
            let key = line.split(' ').next().unwrap_or_default();
            assert_eq!(find_line(table, key), Some(line));
        }
        for absent in ["", "a", "ab", "aer", "aeroo", "b", "zz", "com", "ac com"] {
            assert_eq!(find_line(table, absent), None, "{absent:?}");
        }
    }

    #[test]
    fn a_table_of_one_line_or_none_and_a_trailing_newline_are_fine() {
        assert_eq!(find_line("", "a"), None);
        assert_eq!(find_line("a", "a"), Some("a"));
        assert_eq!(find_line("a\n", "a"), Some("a"));
        assert_eq!(find_line("a\nb\n", "b"), Some("b"));
        assert_eq!(find_line("a\nb\n", "c"), None);
    }
}
