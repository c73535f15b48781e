//! Where the next outbox row of a connection comes from. At CONNACK the highest seq assigned so far becomes the
//! `boundary`; three lanes then read the store, each in seq order:
//! - fresh: rows enqueued after the CONNACK (seq > boundary), sent at once, like live data;
//! - retry: rows the broker refused, due again after their backoff;
//! - backlog: rows enqueued before the CONNACK and not yet acknowledged (seq ≤ boundary), oldest first,
//!   paced by the drain rate and published with `"replayed": true` (the stored bytes are not changed).
//!
//! Pure bookkeeping over pages the session fetches; it never talks to the store itself.

use std::collections::VecDeque;

use crate::store::OutboxRow;

/// The row lanes of one connection.
#[derive(Debug)]
pub(super) struct Lanes {
    boundary: i64,
    page_size: usize,
    fresh_cursor: i64,
    fresh: VecDeque<OutboxRow>,
    fresh_has_more: bool,
    backlog_cursor: i64,
    backlog: VecDeque<OutboxRow>,
    backlog_done: bool,
    /// A backlog page is being read (ahead of need, while the buffered one is sent).
    backlog_reading: bool,
    retry: VecDeque<OutboxRow>,
}

impl Lanes {
    /// Lanes for a connection whose CONNACK came when `boundary` was the highest seq ever assigned.
    pub(super) fn new(boundary: i64, page_size: usize) -> Self {
        Self {
            boundary,
            page_size: page_size.max(1),
            fresh_cursor: boundary,
            fresh: VecDeque::new(),
            fresh_has_more: true,
            backlog_cursor: 0,
            backlog: VecDeque::new(),
            backlog_done: boundary <= 0,
            backlog_reading: false,
            retry: VecDeque::new(),
        }
    }

    /// True for rows enqueued before this connection's CONNACK: they are backlog and marked replayed.
    pub(super) fn is_backlog(&self, seq: i64) -> bool {
        seq <= self.boundary
    }

    /// New rows were committed: the fresh lane has more to read.
    pub(super) fn notify_fresh(&mut self) {
        self.fresh_has_more = true;
    }

    /// The next fresh row, if one is buffered.
    pub(super) fn pop_fresh(&mut self) -> Option<OutboxRow> {
        self.fresh.pop_front()
    }

    /// `(after_seq, limit)` of the next fresh page, when one should be read.
    pub(super) fn fresh_query(&self) -> Option<(i64, usize)> {
        (self.fresh.is_empty() && self.fresh_has_more)
            .then_some((self.fresh_cursor, self.page_size))
    }

    /// Takes a page read for [`Lanes::fresh_query`].
    pub(super) fn accept_fresh(&mut self, rows: Vec<OutboxRow>) {
        self.fresh_has_more = rows.len() >= self.page_size;
        if let Some(last) = rows.last() {
            self.fresh_cursor = last.seq;
        }
        self.fresh.extend(rows);
    }

    /// Whether a paced row (retry or backlog) is buffered.
    pub(super) fn has_paced(&self) -> bool {
        !self.retry.is_empty() || !self.backlog.is_empty()
    }

    /// The next paced row: due retries first, then the backlog, oldest first.
    pub(super) fn pop_paced(&mut self) -> Option<OutboxRow> {
        self.retry.pop_front().or_else(|| self.backlog.pop_front())
    }

    /// `(after_seq, limit)` of the next backlog page, when one should be read: as soon as less than a page is
    /// buffered and no read runs, so the next page arrives while the buffered rows are sent (at most two pages
    /// are buffered).
    pub(super) fn backlog_query(&self) -> Option<(i64, usize)> {
        (self.backlog.len() < self.page_size && !self.backlog_done && !self.backlog_reading)
            .then_some((self.backlog_cursor, self.page_size))
    }

    /// A read for [`Lanes::backlog_query`] was started; no other is asked for until it ends.
    pub(super) fn backlog_read_started(&mut self) {
        self.backlog_reading = true;
    }

    /// The started read failed; the same page is asked for again.
    pub(super) fn backlog_read_failed(&mut self) {
        self.backlog_reading = false;
    }

    /// Takes a page read for [`Lanes::backlog_query`]; rows past the boundary belong to the fresh lane.
    pub(super) fn accept_backlog(&mut self, rows: Vec<OutboxRow>) {
        self.backlog_reading = false;
        if rows.len() < self.page_size {
            self.backlog_done = true;
        }
        for row in rows {
            if row.seq > self.boundary {
                self.backlog_done = true;
                break;
            }
            self.backlog_cursor = row.seq;
            self.backlog.push_back(row);
        }
    }

    /// Refused rows whose retry is due.
    pub(super) fn push_retries(&mut self, rows: Vec<OutboxRow>) {
        self.retry.extend(rows);
    }

    /// Whether backlog rows remain to be sent in this connection.
    pub(super) fn backlog_pending(&self) -> bool {
        !self.backlog_done || !self.backlog.is_empty()
    }

    /// Drops every buffered row (shutdown: submit nothing new).
    pub(super) fn clear(&mut self) {
        self.fresh.clear();
        self.backlog.clear();
        self.retry.clear();
        self.fresh_has_more = false;
        self.backlog_done = true;
    }
}

/// The payload with `"replayed": true` added, when it is a JSON object; `None` otherwise (sent unchanged).
///
/// Every backlog row passes here, so the common case is a splice after the opening brace, not a parse and a
/// second serialisation; a payload that already names `replayed` anywhere takes the parsing path, which
/// overwrites the key instead of repeating it.
pub(super) fn mark_replayed(payload: &[u8]) -> Option<Vec<u8>> {
    const KEY: &str = "\"replayed\"";
    const FIELD: &[u8] = b"\"replayed\":true";
    let start = payload.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = payload.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if payload[start] != b'{' || payload[end] != b'}' || end == start {
        return None;
    }
    if names_key(payload, KEY) {
        let mut body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(payload).ok()?;
        body.insert("replayed".to_owned(), serde_json::Value::Bool(true));
        return serde_json::to_vec(&body).ok();
    }
    let inner = &payload[start + 1..end];
    let empty = inner.iter().all(u8::is_ascii_whitespace);
    let mut marked = Vec::with_capacity(payload.len() + FIELD.len() + 1);
    marked.push(b'{');
    marked.extend_from_slice(FIELD);
    if !empty {
        marked.push(b',');
        marked.extend_from_slice(inner);
    }
    marked.push(b'}');
    Some(marked)
}

/// Whether `payload` contains `key`, a quoted JSON name. A UTF-8 payload (every JSON one) goes through the
/// standard library's vectorised validation and substring search; a payload of a kilobyte then costs a fraction
/// of a comparison at every offset. Anything else compares only at the positions of a quote.
fn names_key(payload: &[u8], key: &str) -> bool {
    debug_assert!(key.starts_with('"'));
    match std::str::from_utf8(payload) {
        Ok(text) => text.contains(key),
        Err(_) => payload
            .iter()
            .enumerate()
            .any(|(at, byte)| *byte == b'"' && payload[at..].starts_with(key.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The quote-anchored search finds a quoted name exactly where a comparison at every offset does.
        #[test]
        fn names_key_agrees_with_a_search_at_every_offset(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(b"\"replayed\"".to_vec()),
                    Just(b"\"replayed".to_vec()),
                    Just(b"\"".to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..8),
                ],
                0..12,
            )
        ) {
            let payload = parts.concat();
            let key = "\"replayed\"";
            let naive = payload.windows(key.len()).any(|window| window == key.as_bytes());
            prop_assert_eq!(names_key(&payload, key), naive);
        }
    }

    fn rows(seqs: impl IntoIterator<Item = i64>) -> Vec<OutboxRow> {
        seqs.into_iter()
            .map(|seq| OutboxRow {
                seq,
                topic: "t".into(),
                payload: b"{}".to_vec(),
                enqueued_at: 0,
            })
            .collect()
    }

    fn seqs(rows: impl IntoIterator<Item = OutboxRow>) -> Vec<i64> {
        rows.into_iter().map(|row| row.seq).collect()
    }

    #[test]
    fn given_a_boundary_when_pages_arrive_then_old_rows_are_backlog_and_new_rows_fresh() {
        let mut lanes = Lanes::new(5, 3);
        assert_eq!(lanes.backlog_query(), Some((0, 3)));
        lanes.accept_backlog(rows([2, 3, 4]));
        assert_eq!(lanes.backlog_query(), None, "a page is buffered");
        assert_eq!(
            seqs(std::iter::from_fn(|| lanes.pop_paced())),
            vec![2, 3, 4]
        );
        assert_eq!(lanes.backlog_query(), Some((4, 3)));
        // The page runs past the boundary: seq 7 is fresh and is left to the fresh lane.
        lanes.accept_backlog(rows([5, 7]));
        assert_eq!(seqs(std::iter::from_fn(|| lanes.pop_paced())), vec![5]);
        assert_eq!(lanes.backlog_query(), None);
        assert!(!lanes.backlog_pending());

        assert_eq!(lanes.fresh_query(), Some((5, 3)));
        lanes.accept_fresh(rows([7]));
        assert_eq!(lanes.fresh_query(), None);
        assert_eq!(lanes.pop_fresh().map(|row| row.seq), Some(7));
        assert_eq!(lanes.fresh_query(), None, "a short page means no more");
        lanes.notify_fresh();
        assert_eq!(lanes.fresh_query(), Some((7, 3)));
        assert!(lanes.is_backlog(5) && !lanes.is_backlog(6));
    }

    #[test]
    fn given_a_buffered_page_when_rows_are_sent_then_the_next_page_is_read_ahead_once() {
        let mut lanes = Lanes::new(100, 4);
        assert_eq!(lanes.backlog_query(), Some((0, 4)));
        lanes.backlog_read_started();
        assert_eq!(lanes.backlog_query(), None, "one read at a time");
        lanes.accept_backlog(rows([1, 2, 3, 4]));
        assert_eq!(lanes.backlog_query(), None, "a full page is buffered");
        assert_eq!(lanes.pop_paced().map(|row| row.seq), Some(1));
        assert_eq!(lanes.backlog_query(), Some((4, 4)), "less than a page left");
        lanes.backlog_read_started();
        lanes.backlog_read_failed();
        assert_eq!(
            lanes.backlog_query(),
            Some((4, 4)),
            "a failed read is asked again"
        );
        lanes.backlog_read_started();
        lanes.accept_backlog(rows([5, 6, 7, 8]));
        assert_eq!(
            seqs(std::iter::from_fn(|| lanes.pop_paced())),
            vec![2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn given_due_retries_when_paced_rows_are_taken_then_retries_go_before_the_backlog() {
        let mut lanes = Lanes::new(10, 4);
        lanes.accept_backlog(rows([3, 4]));
        lanes.push_retries(rows([1]));
        assert_eq!(
            seqs(std::iter::from_fn(|| lanes.pop_paced())),
            vec![1, 3, 4]
        );
    }

    #[test]
    fn given_an_empty_outbox_at_connack_when_asked_then_there_is_no_backlog() {
        let lanes = Lanes::new(0, 4);
        assert_eq!(lanes.backlog_query(), None);
        assert!(!lanes.backlog_pending());
    }

    #[test]
    fn given_stored_payloads_when_marked_then_objects_gain_replayed_and_others_are_left_alone() {
        let marked = mark_replayed(br#"{"seq":4,"msg_id":"ab"}"#).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&marked).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"seq": 4, "msg_id": "ab", "replayed": true})
        );
        assert_eq!(mark_replayed(b"[1,2]"), None);
        assert_eq!(mark_replayed(b"not json"), None);
        assert_eq!(mark_replayed(b" { } ").unwrap(), br#"{"replayed":true}"#);
        // Already marked (a payload stored by an older build, say): the key is overwritten, not repeated.
        let again = mark_replayed(br#"{"a":1,"replayed":false}"#).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&again).unwrap();
        assert_eq!(body, serde_json::json!({"a": 1, "replayed": true}));
        assert_eq!(
            String::from_utf8_lossy(&again).matches("replayed").count(),
            1
        );
    }
}
