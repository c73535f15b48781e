//! Misbehaviour on cue and the request ledger. A test arms [`FaultRule`]s (silence, late answers, exceptions,
//! wrong lengths, half frames) scoped to a unit and an address range; the service consults them per request.
//! The ledger records every request every connection made, so tests can count reads, writes and pacing.
//! Deliberately knows nothing about sockets: half frames are carried out by `transport::FaultyStream`.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::Duration;

use tokio::time::Instant;

/// Most requests the ledger remembers; older ones are forgotten but still counted in [`SimStats`].
const LEDGER_CAPACITY: usize = 50_000;

/// One way a simulated PLC misbehaves when answering a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request is read but never answered; the connection stays open.
    Silent,
    /// The answer is sent after this delay (later answers on the connection queue behind it).
    Delay(Duration),
    /// The request is answered with this Modbus exception code (0x01 illegal function, 0x0B gateway target …).
    Exception(u8),
    /// The answer carries this many registers (or bits) more than asked for; negative means fewer.
    WrongCount(i32),
    /// The first half of the response frame is sent, then the connection goes silent for good.
    HalfFrameThenStall,
    /// The first half of the response frame is sent, then the connection is reset (TCP RST).
    HalfFrameThenReset,
}

/// A fault and the requests it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// What happens.
    pub fault: Fault,
    /// Only requests to this unit id (every unit when `None`).
    pub unit: Option<u8>,
    /// Only requests whose span overlaps these addresses (every address when `None`).
    pub addresses: Option<RangeInclusive<u16>>,
    /// How many more requests it applies to (for ever when `None`); the rule is removed at 0.
    pub times: Option<u32>,
}

impl FaultRule {
    /// A rule applying `fault` to every request until cleared.
    pub fn new(fault: Fault) -> Self {
        Self {
            fault,
            unit: None,
            addresses: None,
            times: None,
        }
    }

    /// Restricts the rule to one unit id.
    pub fn unit(mut self, unit_id: u8) -> Self {
        self.unit = Some(unit_id);
        self
    }

    /// Restricts the rule to requests overlapping `addresses`.
    pub fn addresses(mut self, addresses: RangeInclusive<u16>) -> Self {
        self.addresses = Some(addresses);
        self
    }

    /// Applies the rule to the next `times` matching requests only.
    pub fn times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }

    fn matches(&self, unit_id: u8, span: Option<RangeInclusive<u16>>) -> bool {
        if self.unit.is_some_and(|unit| unit != unit_id) {
            return false;
        }
        match (&self.addresses, span) {
            (None, _) => true,
            // A request without an address span (an unknown function) is only hit by address-free rules.
            (Some(_), None) => false,
            (Some(rule), Some(span)) => rule.start() <= span.end() && span.start() <= rule.end(),
        }
    }
}

/// One request as the simulator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Connection number, from 1 in accept order.
    pub connection: u64,
    /// Unit id of the request.
    pub unit_id: u8,
    /// Function code.
    pub function: u8,
    /// First address (0 for functions without one).
    pub address: u16,
    /// Quantity of registers or bits (0 for functions without one).
    pub quantity: u16,
    /// When the request was handed to the service.
    pub at: Instant,
    /// The fault applied to it, if any.
    pub fault: Option<Fault>,
}

/// Counters over the simulator's lifetime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Requests of any kind.
    pub requests: u64,
    /// Read requests (function codes 1–4).
    pub reads: u64,
    /// Every request that is not a read (writes, diagnostics, anything else): a read-only client sends none.
    pub non_reads: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// Requests a fault rule applied to.
    pub faulted: u64,
}

/// The armed rules and the ledger of one simulator.
#[derive(Debug)]
pub(crate) struct FaultBook {
    rules: Vec<FaultRule>,
    ledger: VecDeque<RequestRecord>,
    /// Most requests the ledger keeps; 0 keeps none (a long benchmark run needs no ledger).
    ledger_capacity: usize,
    stats: SimStats,
}

impl Default for FaultBook {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            ledger: VecDeque::new(),
            ledger_capacity: LEDGER_CAPACITY,
            stats: SimStats::default(),
        }
    }
}

impl FaultBook {
    pub(crate) fn arm(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn connection_opened(&mut self) -> u64 {
        self.stats.connections += 1;
        self.stats.connections
    }

    pub(crate) fn stats(&self) -> SimStats {
        self.stats
    }

    /// Keeps at most `capacity` requests in the ledger from now on (0: none), forgetting the oldest.
    pub(crate) fn set_ledger_capacity(&mut self, capacity: usize) {
        self.ledger_capacity = capacity;
        while self.ledger.len() > capacity {
            self.ledger.pop_front();
        }
        self.ledger.shrink_to(capacity);
    }

    pub(crate) fn ledger(&self) -> Vec<RequestRecord> {
        self.ledger.iter().cloned().collect()
    }

    /// Records one request and returns the fault to apply to it, consuming one use of a counted rule.
    pub(crate) fn on_request(
        &mut self,
        connection: u64,
        unit_id: u8,
        function: u8,
        span: Option<(u16, u16)>,
    ) -> Option<Fault> {
        self.stats.requests += 1;
        if (1..=4).contains(&function) {
            self.stats.reads += 1;
        } else {
            self.stats.non_reads += 1;
        }
        let range = span.map(|(address, quantity)| {
            let last = u32::from(address) + u32::from(quantity.max(1)) - 1;
            address..=u16::try_from(last).unwrap_or(u16::MAX)
        });
        let fault = match self
            .rules
            .iter()
            .position(|rule| rule.matches(unit_id, range.clone()))
        {
            Some(index) => {
                let rule = &mut self.rules[index];
                let fault = rule.fault;
                if let Some(times) = rule.times.as_mut() {
                    *times = times.saturating_sub(1);
                    if *times == 0 {
                        self.rules.remove(index);
                    }
                }
                self.stats.faulted += 1;
                Some(fault)
            }
            None => None,
        };
        if self.ledger_capacity == 0 {
            return fault;
        }
        let (address, quantity) = span.unwrap_or((0, 0));
        if self.ledger.len() >= self.ledger_capacity {
            self.ledger.pop_front();
        }
        self.ledger.push_back(RequestRecord {
            connection,
            unit_id,
            function,
            address,
            quantity,
            at: Instant::now(),
            fault,
        });
        fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_scoped_rules_when_requests_arrive_then_only_overlapping_ones_are_faulted() {
        let mut book = FaultBook::default();
        book.arm(
            FaultRule::new(Fault::Exception(2))
                .unit(2)
                .addresses(100..=101),
        );
        book.arm(FaultRule::new(Fault::Silent).unit(3).times(1));

        assert_eq!(book.on_request(1, 1, 3, Some((100, 2))), None);
        assert_eq!(book.on_request(1, 2, 3, Some((98, 2))), None);
        assert_eq!(
            book.on_request(1, 2, 3, Some((99, 2))),
            Some(Fault::Exception(2))
        );
        assert_eq!(book.on_request(1, 2, 6, None), None);
        assert_eq!(book.on_request(1, 3, 3, Some((0, 1))), Some(Fault::Silent));
        assert_eq!(
            book.on_request(1, 3, 3, Some((0, 1))),
            None,
            "a rule for one request is used up"
        );
        let stats = book.stats();
        assert_eq!((stats.requests, stats.reads, stats.non_reads), (6, 5, 1));
        assert_eq!(stats.faulted, 2);
        assert_eq!(book.ledger().len(), 6);
        book.clear();
        assert_eq!(book.on_request(1, 2, 3, Some((100, 1))), None);
    }

    #[test]
    fn given_a_bounded_ledger_when_requests_keep_coming_then_it_keeps_only_the_newest_and_counts_all(
    ) {
        let mut book = FaultBook::default();
        book.set_ledger_capacity(3);
        for address in 0..10 {
            book.on_request(1, 1, 3, Some((address, 1)));
        }
        let kept: Vec<u16> = book.ledger().iter().map(|r| r.address).collect();
        assert_eq!(kept, vec![7, 8, 9]);
        book.set_ledger_capacity(0);
        assert!(book.ledger().is_empty());
        book.on_request(1, 1, 3, Some((0, 1)));
        assert!(
            book.ledger().is_empty(),
            "a switched-off ledger records nothing"
        );
        assert_eq!(book.stats().requests, 11, "every request is still counted");
    }
}
