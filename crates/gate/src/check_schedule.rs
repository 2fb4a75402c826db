//! `CheckSchedule`: when each sent signup is next checked, held in memory by the gate. A check
//! that only moves a signup's next check writes nothing; the stored row keeps the time it had
//! when its status last changed, which is never later than the schedule's. A new object
//! rebuilds the schedule from the stored rows, so after a restart a signup is checked early,
//! never late.
//!
//! Invariants: one entry per key; the order is by time, then key; every entry names a stored
//! signup (the gate removes an entry whose row is gone when it reads it).

/// `(next check, key)` for every scheduled signup, sorted. A plain sorted list: due checks are
/// a prefix, the earliest is the first, and a change moves one entry (fewer bytes of the upload
/// than a tree, and the few thousand pending signups move in microseconds).
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
        let mut schedule = Self(Vec::with_capacity(order.len()));
        for (_, n) in order {
            if let Some((key, at)) = entries.get_mut(n as usize).and_then(Option::take) {
                schedule.set(&key, Some(at));
            }
        }
        schedule
    }

    /// Sets `key`'s next check (`None`: no more checks).
    pub fn set(&mut self, key: &str, at: Option<u64>) {
        if let Some(place) = self.0.iter().position(|(_, k)| k == key) {
            self.0.remove(place);
        }
        if let Some(at) = at {
            let place = self
                .0
                .partition_point(|(t, k)| (*t, k.as_str()) < (at, key));
            self.0.insert(place, (at, key.to_string()));
        }
    }

    /// Up to `limit` keys due at or before `bound`, earliest first (then by key).
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

    #[test]
    fn due_checks_come_earliest_first_up_to_the_limit() {
        let schedule = CheckSchedule::of(vec![
            ("s10".to_string(), 10),
            ("s5".to_string(), 5),
            ("s20".to_string(), 20),
            ("s5b".to_string(), 5),
        ]);
        let keys = |due: Vec<(String, u64)>| due.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(schedule.due(15, 10)), ["s5", "s5b", "s10"]);
        assert_eq!(keys(schedule.due(15, 1)), ["s5"]);
        assert_eq!(schedule.first(), Some(5));
        assert_eq!(schedule.len(), 4);
    }

    #[test]
    fn a_key_has_one_entry_which_moves_or_goes() {
        let mut schedule = CheckSchedule::default();
        schedule.set("a", Some(5));
        schedule.set("b", Some(20));
        schedule.set("a", Some(50));
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
}
