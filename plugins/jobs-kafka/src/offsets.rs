//! Which offset a consumer group may commit: per partition, the first record not yet settled.
//! RoadRunner marks each acknowledged record and commits the highest mark, so a later ack
//! commits past a job still running or lost in a crash (roadrunner#1325); here the commit
//! point never passes a record whose job is unsettled.

use std::collections::{BTreeMap, HashMap};

#[derive(Default)]
pub struct Offsets(HashMap<(String, i32), BTreeMap<i64, bool>>);

impl Offsets {
    /// A record was fetched; false when it is already here, running or settled but not yet
    /// committed: the group fetched it again after a rebalance (or a broker restart) gave this
    /// consumer its partition back, and the job must not run twice.
    pub fn delivered(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        let pending = self.0.entry((topic.to_string(), partition)).or_default();
        if pending.contains_key(&offset) {
            return false;
        }
        pending.insert(offset, false);
        true
    }

    /// Settle one record; the offset to commit when the settled run at the front grew.
    pub fn settled(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let pending = self.0.get_mut(&(topic.to_string(), partition))?;
        *pending.get_mut(&offset)? = true;
        let mut next = None;
        while let Some(entry) = pending.first_entry() {
            if !*entry.get() {
                break;
            }
            next = Some(entry.remove_entry().0 + 1);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::Offsets;

    #[test]
    fn a_later_ack_never_commits_past_an_unsettled_record() {
        let mut o = Offsets::default();
        for offset in 5..9 {
            o.delivered("t", 0, offset);
        }
        o.delivered("t", 1, 0);
        assert_eq!(o.settled("t", 0, 6), None, "offset 5 is still running");
        assert_eq!(o.settled("t", 0, 8), None);
        assert_eq!(o.settled("t", 1, 0), Some(1), "partitions are independent");
        assert_eq!(o.settled("t", 0, 5), Some(7), "5 and 6 settled, 7 still running");
        assert_eq!(o.settled("t", 0, 7), Some(9));
        assert_eq!(o.settled("t", 0, 7), None, "settled twice");
        assert_eq!(o.settled("other", 0, 1), None);
    }

    #[test]
    fn a_record_fetched_again_while_its_job_runs_is_not_new() {
        let mut o = Offsets::default();
        assert!(o.delivered("t", 0, 3));
        assert!(o.delivered("t", 0, 4));
        assert!(!o.delivered("t", 0, 3), "fetched again after a rebalance, still running");
        assert_eq!(o.settled("t", 0, 4), None);
        assert!(!o.delivered("t", 0, 4), "settled, waiting for 3");
        assert_eq!(o.settled("t", 0, 3), Some(5));
    }
}
