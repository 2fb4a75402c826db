//! `CheckSchedule`: when each sent signup is next checked, held in memory by the gate. A check
//! that only moves a signup's next check writes nothing: its row keeps the time of its last
//! change of status. A new object rebuilds the schedule from the rows, resuming a stale time one
//! check gap from then (`Signup::resumed_check_at`).
//!
//! Invariants: one entry per key, in time order; every entry names a stored signup (the gate
//! removes an entry whose row is gone when it reads it); built in O(n log n).

/// `(next check, key)` for every scheduled signup, in time order. A plain sorted list: due
/// checks are a prefix, the earliest is the first, a change moves one entry (fewer bytes of the
/// upload than a tree or a hash index; a change scans the list once, about a microsecond per
/// thousand pending signups).
#[derive(Debug, Default)]
pub struct CheckSchedule(Vec<(u64, String)>);

impl CheckSchedule {
    /// The schedule of the stored signups `(key, next check)`.
    pub fn of(entries: Vec<(String, u64)>) -> Self {
        let mut order: Vec<(u64, u64)> = entries
            .iter()
            .enumerate()
            .map(|(n, (_, at))| (*at, n as u64))
            .collect();
        order.sort_unstable();
        let mut entries: Vec<Option<(String, u64)>> = entries.into_iter().map(Some).collect();
        let mut schedule = Vec::with_capacity(order.len());
        for (_, n) in order {
            if let Some((key, at)) = entries.get_mut(n as usize).and_then(Option::take) {
                schedule.push((at, key));
            }
        }
        Self(schedule)
    }

    /// Sets `key`'s next check (`None`: no more checks).
    pub fn set(&mut self, key: &str, at: Option<u64>) {
        if let Some(place) = self.0.iter().position(|(_, k)| k == key) {
            self.0.remove(place);
        }
        if let Some(at) = at {
            let place = self.0.partition_point(|(t, _)| *t <= at);
            self.0.insert(place, (at, key.to_string()));
        }
    }

    /// Up to `limit` keys due at or before `bound`, earliest first.
    pub fn due(&self, bound: u64, limit: usize) -> Vec<(String, u64)> {
        self.0
            .iter()
            .take_while(|(at, _)| *at <= bound)
            .take(limit)
            .map(|(at, key)| (key.clone(), *at))
            .collect()
    }

    /// The earliest next check.
    pub fn first(&self) -> Option<u64> {
        self.0.first().map(|(at, _)| *at)
    }

    /// `key`'s next check.
    pub fn at(&self, key: &str) -> Option<u64> {
        self.0.iter().find(|(_, k)| k == key).map(|(at, _)| *at)
    }

    /// How many signups wait for a check.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(due: Vec<(String, u64)>) -> Vec<String> {
        due.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn due_checks_come_earliest_first_up_to_the_limit() {
        let schedule = CheckSchedule::of(vec![
            ("s10".to_string(), 10),
            ("s5".to_string(), 5),
            ("s20".to_string(), 20),
            ("s5b".to_string(), 5),
        ]);
        assert_eq!(keys(schedule.due(15, 10)), ["s5", "s5b", "s10"]);
        assert_eq!(keys(schedule.due(15, 1)), ["s5"]);
        assert_eq!(schedule.first(), Some(5));
        assert_eq!(schedule.len(), 4);
        assert_eq!(
            (schedule.at("s20"), schedule.at("s10"), schedule.at("x")),
            (Some(20), Some(10), None)
        );
    }

    #[test]
    fn a_key_has_one_entry_which_moves_or_goes() {
        let mut schedule = CheckSchedule::default();
        schedule.set("a", Some(5));
        schedule.set("b", Some(20));
        schedule.set("a", Some(50));
        assert_eq!(keys(schedule.due(100, 10)), ["b", "a"]);
        schedule.set("b", None);
        assert_eq!(
            (schedule.len(), schedule.first(), schedule.at("a")),
            (1, Some(50), Some(50))
        );
        assert!(schedule.due(10, 10).is_empty());
        schedule.set("a", None);
        assert!(schedule.is_empty());
        assert_eq!(schedule.first(), None);
    }

    #[test]
    fn ten_thousand_stored_checks_are_scheduled_in_order() {
        let entries: Vec<(String, u64)> = (0..10_000u64)
            .map(|n| (format!("k{n}"), (n * 7_919) % 10_007))
            .collect();
        let schedule = CheckSchedule::of(entries);
        let due = schedule.due(u64::MAX, usize::MAX);
        assert_eq!(due.len(), 10_000);
        assert!(due.windows(2).all(|w| w[0].1 <= w[1].1));
    }
}
