//! Which offset a consumer group may commit: per partition, the first record not yet settled.
//! RoadRunner marks each acknowledged record and commits the highest mark, so a later ack
//! commits past a job still running or lost in a crash (roadrunner#1325); here the commit
//! point never passes a record whose job is unsettled.
//!
//! It also tells a record the group hands out again from a new one: after a rebalance or a broker
//! restart the group resumes from its last commit, which may be behind jobs running or done here.

use std::collections::{BTreeMap, HashMap};

/// How many settled records per partition are remembered to recognise them when fetched again.
const REMEMBERED: usize = 10_000;

#[derive(Default)]
pub struct Offsets(HashMap<(String, i32), Partition>);

#[derive(Default)]
struct Partition {
    /// Records fetched and not yet behind the commit point: settled or not.
    pending: BTreeMap<i64, bool>,
    /// The keys (job ids) of the last settled records, by offset. The key guards against a
    /// topic that was recreated: its new records reuse old offsets.
    settled: BTreeMap<i64, Vec<u8>>,
}

impl Offsets {
    /// A record was fetched; false when this consumer already has it, running or done: the job
    /// must not run twice.
    pub fn delivered(&mut self, topic: &str, partition: i32, offset: i64, key: &[u8]) -> bool {
        let p = self.0.entry((topic.to_string(), partition)).or_default();
        if p.pending.contains_key(&offset) || p.settled.get(&offset).is_some_and(|k| k == key) {
            return false;
        }
        p.pending.insert(offset, false);
        true
    }

    /// Settle one record; the offset to commit when the settled run at the front grew.
    pub fn settled(&mut self, topic: &str, partition: i32, offset: i64, key: &[u8]) -> Option<i64> {
        let p = self.0.get_mut(&(topic.to_string(), partition))?;
        *p.pending.get_mut(&offset)? = true;
        p.settled.insert(offset, key.to_vec());
        if p.settled.len() > REMEMBERED {
            p.settled.pop_first();
        }
        let mut next = None;
        while let Some(entry) = p.pending.first_entry() {
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
            o.delivered("t", 0, offset, b"k");
        }
        o.delivered("t", 1, 0, b"k");
        assert_eq!(o.settled("t", 0, 6, b"k"), None, "offset 5 is still running");
        assert_eq!(o.settled("t", 0, 8, b"k"), None);
        assert_eq!(o.settled("t", 1, 0, b"k"), Some(1), "partitions are independent");
        assert_eq!(o.settled("t", 0, 5, b"k"), Some(7), "5 and 6 settled, 7 still running");
        assert_eq!(o.settled("t", 0, 7, b"k"), Some(9));
        assert_eq!(o.settled("t", 0, 7, b"k"), None, "settled twice");
        assert_eq!(o.settled("other", 0, 1, b"k"), None);
    }

    #[test]
    fn a_record_fetched_again_is_not_new() {
        let mut o = Offsets::default();
        assert!(o.delivered("t", 0, 3, b"a"));
        assert!(o.delivered("t", 0, 4, b"b"));
        assert!(!o.delivered("t", 0, 3, b"a"), "fetched again after a rebalance, still running");
        assert_eq!(o.settled("t", 0, 4, b"b"), None);
        assert!(!o.delivered("t", 0, 4, b"b"), "settled, waiting for 3");
        assert_eq!(o.settled("t", 0, 3, b"a"), Some(5));
        assert!(!o.delivered("t", 0, 3, b"a"), "done, but the commit was lost");
        assert!(o.delivered("t", 0, 3, b"c"), "another record at a reused offset (a recreated topic)");
    }
}
