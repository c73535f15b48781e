//! The counting report of a recording subscriber: durable messages (those carrying `msg_id`, `seq` and
//! `db_epoch`) de-duplicated by `msg_id`, checked against what the agent enqueued (seq 1..=last_seq per
//! db_epoch, minus what is still waiting in its outbox). Duplicates are allowed and counted; gaps are not.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::recorder::Received;

/// What one scenario's subscriber saw, in numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CountingReport {
    /// Rows the agent enqueued and no longer holds (so they must have been delivered).
    pub expected: usize,
    /// Distinct `msg_id`s received.
    pub received_unique: usize,
    /// Deliveries beyond the first of a `msg_id` (at-least-once re-sends).
    pub duplicates: usize,
    /// Expected seqs never received: lost data.
    pub missing: usize,
    /// First deliveries that arrived after a higher seq on the same topic (backlog after live is expected).
    pub misordered: usize,
}

/// What the agent's store says it enqueued: per `db_epoch`, the highest seq and the seqs still unsent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Enqueued {
    /// db_epoch → (last seq assigned, seqs still in the outbox).
    pub epochs: BTreeMap<String, (i64, BTreeSet<i64>)>,
}

impl CountingReport {
    /// Counts `messages` against `enqueued`; also returns the missing `(db_epoch, seq)` pairs.
    pub(crate) fn count(
        messages: &[Received],
        enqueued: &Enqueued,
    ) -> (CountingReport, Vec<(String, i64)>) {
        let mut report = CountingReport::default();
        let mut seen_ids = HashSet::new();
        let mut received: HashMap<&str, BTreeSet<i64>> = HashMap::new();
        let mut highest_on_topic: HashMap<(&str, &str), i64> = HashMap::new();
        for message in messages {
            let body = &message.body;
            let (Some(msg_id), Some(seq), Some(epoch)) = (
                body["msg_id"].as_str(),
                body["seq"].as_i64(),
                body["db_epoch"].as_str(),
            ) else {
                continue;
            };
            if !seen_ids.insert(msg_id.to_string()) {
                report.duplicates += 1;
                continue;
            }
            received.entry(epoch).or_default().insert(seq);
            let highest = highest_on_topic
                .entry((epoch, message.topic.as_str()))
                .or_insert(seq);
            if seq < *highest {
                report.misordered += 1;
            }
            *highest = (*highest).max(seq);
        }
        report.received_unique = seen_ids.len();
        let mut missing = Vec::new();
        for (epoch, (last_seq, unsent)) in &enqueued.epochs {
            let got = received.get(epoch.as_str());
            for seq in 1..=*last_seq {
                if unsent.contains(&seq) {
                    continue;
                }
                report.expected += 1;
                if !got.is_some_and(|seqs| seqs.contains(&seq)) {
                    missing.push((epoch.clone(), seq));
                }
            }
        }
        report.missing = missing.len();
        (report, missing)
    }

    /// Prints the report on stdout (shown with `--nocapture`) and stderr (shown for a failing test).
    pub(crate) fn print(&self, scenario: &str) {
        let line = format!(
            "counting report [{scenario}]: expected {} received_unique {} duplicates {} missing {} \
             misordered {}",
            self.expected, self.received_unique, self.duplicates, self.missing, self.misordered
        );
        crate::support::report(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(topic: &str, msg_id: &str, seq: i64) -> Received {
        Received {
            topic: topic.to_string(),
            body: json!({"msg_id": msg_id, "seq": seq, "db_epoch": "e1"}),
            retained: false,
            arrived: std::time::Instant::now(),
        }
    }

    #[test]
    fn given_duplicates_gaps_and_a_late_row_when_counted_then_each_is_reported() {
        let messages = [
            message("a", "m1", 1),
            message("a", "m3", 3),
            message("a", "m1", 1),
            message("a", "m2", 2),
            message("b", "m5", 5),
        ];
        let enqueued = Enqueued {
            epochs: [("e1".to_string(), (6, BTreeSet::from([6])))].into(),
        };
        let (report, missing) = CountingReport::count(&messages, &enqueued);
        assert_eq!(
            report,
            CountingReport {
                expected: 5,
                received_unique: 4,
                duplicates: 1,
                missing: 1,
                misordered: 1,
            }
        );
        assert_eq!(missing, vec![("e1".to_string(), 4)]);
    }
}
