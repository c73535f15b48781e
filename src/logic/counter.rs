//! Raw cumulative counter value → delta, as a `CounterStep` value.
//! Wraps, resets and glitches are values, never errors. No I/O, no clock.
//! Wrap window W: with a design rate p, the plausibility window max(2·p·min(t_max, Δt), 2 units);
//! without, max(2 × recent max rate × Δt, max(16, M/64)). `modulus` 0 or `u64::MAX` means 2^64.
//! A raw value at or above the modulus is not a reading of the counter (`Invalid`). No "explicit reset
//! evidence" input exists yet, so a decrease is judged by wrap, then the held zero, then `on_decrease`.

use serde::{Deserialize, Serialize};

use super::decode::UnknownName;
use super::rollup::Flag;
use super::Millis;

/// What to do when a counter goes down and it is not a wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDecrease {
    /// Treat the drop as a reset: the new value is the delta.
    #[default]
    Reset,
    /// Ignore the drop: delta 0, the new value becomes the baseline.
    Ignore,
}

impl OnDecrease {
    /// Both policies.
    pub const ALL: [OnDecrease; 2] = [OnDecrease::Reset, OnDecrease::Ignore];

    /// The name used in configuration files (`reset`, `ignore`).
    pub fn name(self) -> &'static str {
        match self {
            OnDecrease::Reset => "reset",
            OnDecrease::Ignore => "ignore",
        }
    }
}

impl std::str::FromStr for OnDecrease {
    type Err = UnknownName;

    /// Parses a policy by its [`OnDecrease::name`].
    fn from_str(text: &str) -> Result<OnDecrease, UnknownName> {
        OnDecrease::ALL
            .into_iter()
            .find(|policy| policy.name() == text)
            .ok_or_else(|| UnknownName {
                given: text.to_owned(),
                expected: OnDecrease::ALL.iter().map(|p| p.name()).collect(),
            })
    }
}

/// Per-channel counter behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterConfig {
    /// The value at which the counter wraps to 0 (2^16, 2^32, 10000, ...).
    pub modulus: u64,
    /// Whether wrap detection is on.
    pub wrap: bool,
    /// Handling of a decrease that is not a wrap.
    pub on_decrease: OnDecrease,
    /// Design rate and its time bound, for the plausibility guard; `None`: no guard.
    pub design_rate: Option<DesignRate>,
}

/// The plausibility guard of a counter: `W = 2 · p · min(t_max, Δt)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DesignRate {
    /// `p`, in units per second.
    pub units_per_s: f64,
    /// Longest Δt the plausibility window grows with, in ms.
    pub t_max_ms: Millis,
}

/// Default `t_max` in poll intervals of the counter's PLC. At a steady pace Δt is one poll interval;
/// three tolerate a late or a failed poll without quarantining real production. Beyond that the agent
/// has not watched the counter, and a delta of more than 2·p·t_max after such a silence is what a
/// program download or a preset counter looks like, so it is quarantined for review (and released if
/// real) instead of being counted blindly, as a fixed hour let every jump below 7200·p through.
pub const DEFAULT_T_MAX_POLL_INTERVALS: i64 = 3;

/// Smallest plausibility window in units: a single unit per poll is never quarantined, however
/// low the design rate or short the poll interval.
pub const PLAUSIBILITY_FLOOR: f64 = 2.0;

/// Smallest wrap window without a design rate, in units; the floor is `max(16, modulus / 64)`.
pub const WRAP_FLOOR_MIN: f64 = 16.0;

/// Half-life of the observed maximum rate (10 min, in seconds): the wrap window follows the
/// channel's recent pace, not its all-time peak.
pub const RATE_HALF_LIFE_S: f64 = 600.0;

/// The outcome of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// First value ever seen; delta 0.
    Baseline,
    /// Same or higher value; delta = new − old.
    Normal,
    /// Rolled over the modulus; delta = new + modulus − old.
    Wrap,
    /// Went down (not a wrap, not a glitch); delta = new value.
    Reset,
    /// The sample after a held zero came back at or above the value before the zero; delta =
    /// new − before, the zero was a glitch.
    GlitchZero,
    /// Dropped to exactly 0; held for one poll, delta 0, the next sample decides.
    HeldZero,
    /// Went down with `on_decrease = ignore`; delta 0, the new value is the baseline.
    IgnoredDecrease,
    /// Delta at or above the plausibility window; `delta` is the amount, which is not counted.
    Rejected,
    /// The raw value is at or above the modulus, which a counter of this modulus cannot hold: not a
    /// reading (a gap for the counter). Delta 0 and the baseline is not moved.
    Invalid,
}

impl StepKind {
    /// Whether callers add the step's delta to production (everything but `Rejected` and `Invalid`).
    pub fn is_counted(self) -> bool {
        !matches!(self, StepKind::Rejected | StepKind::Invalid)
    }

    /// Whether the step is an anomaly announced by a `counter_anomaly` event.
    pub fn is_anomaly(self) -> bool {
        matches!(
            self,
            StepKind::Reset | StepKind::Rejected | StepKind::Invalid
        )
    }

    /// The rollup flag this outcome raises, if any (`Invalid` is a gap: the caller treats the counter
    /// as unread).
    pub fn flag(self) -> Option<Flag> {
        match self {
            StepKind::Wrap => Some(Flag::Wrap),
            StepKind::Reset | StepKind::IgnoredDecrease => Some(Flag::Reset),
            StepKind::GlitchZero => Some(Flag::GlitchZero),
            StepKind::Rejected => Some(Flag::Rejected),
            StepKind::Baseline | StepKind::Normal | StepKind::HeldZero | StepKind::Invalid => None,
        }
    }

    /// The snake_case name, as serialized (for the persisted delta log).
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Baseline => "baseline",
            StepKind::Normal => "normal",
            StepKind::Wrap => "wrap",
            StepKind::Reset => "reset",
            StepKind::GlitchZero => "glitch_zero",
            StepKind::HeldZero => "held_zero",
            StepKind::IgnoredDecrease => "ignored_decrease",
            StepKind::Rejected => "rejected",
            StepKind::Invalid => "invalid",
        }
    }
}

/// One sample's result: what happened and how much was produced over `[t_from, t_to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterStep {
    /// What happened.
    pub kind: StepKind,
    /// Units produced (for `Rejected`: the implausible amount, not to be counted).
    pub delta: u64,
    /// Time of the previous accepted sample (for `GlitchZero`: the sample before the zero).
    pub t_from: Millis,
    /// Time of this sample.
    pub t_to: Millis,
    /// The raw value of this sample.
    pub raw: u64,
}

/// The value and time before a drop to zero that is being held for one poll.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct HeldZero {
    before: u64,
    before_at: Millis,
}

/// Per-channel memory between samples; persisted as JSON (the "baseline", ARCHITECTURE.md invariant 3).
///
/// `Default` is a channel that has never been sampled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterState {
    /// Last accepted raw value (0 while a zero is held); `None` before the first sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<u64>,
    /// Time of `last`.
    #[serde(default)]
    at: Millis,
    /// Set while a drop to 0 is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    held: Option<HeldZero>,
    /// Decaying maximum of delta / Δt in thousandths of a unit per second; an integer so the
    /// JSON round trip is exact and a restored state steps exactly like the live one.
    #[serde(default)]
    rate_milli: u64,
}

/// `modulus` as the counter arithmetic reads it: 0 and `u64::MAX` both mean 2^64 (a u64 range).
fn effective_modulus(cfg: &CounterConfig) -> u128 {
    match cfg.modulus {
        0 | u64::MAX => 1u128 << 64,
        modulus => u128::from(modulus),
    }
}

fn seconds_between(from: Millis, to: Millis) -> f64 {
    (to.saturating_sub(from)).max(0) as f64 / 1000.0
}

impl CounterState {
    /// The last accepted raw value, `None` before the first sample.
    pub fn last_raw(&self) -> Option<u64> {
        self.last
    }

    /// Time of the last accepted sample.
    pub fn last_at(&self) -> Millis {
        self.at
    }

    /// The observed recent maximum rate in units per second (decaying; the wrap window of this module's header).
    pub fn recent_rate(&self) -> f64 {
        self.rate_milli as f64 / 1000.0
    }

    /// The plausibility window for `dt_s` seconds with design rate `rate`, in units.
    fn plausibility_window(rate: DesignRate, dt_s: f64) -> f64 {
        let capped = dt_s.min(rate.t_max_ms.max(0) as f64 / 1000.0);
        (2.0 * rate.units_per_s * capped).max(PLAUSIBILITY_FLOOR)
    }

    /// The wrap window `W` for a gap of `dt_s` seconds (see the module header).
    ///
    /// With a design rate it is the plausibility window. Without, it is
    /// `max(2 × recent max rate × Δt, max(16, modulus / 64))`.
    fn wrap_window(&self, cfg: &CounterConfig, modulus: u128, dt_s: f64) -> f64 {
        match cfg.design_rate {
            Some(rate) => Self::plausibility_window(rate, dt_s),
            None => {
                let floor = WRAP_FLOOR_MIN.max(modulus as f64 / 64.0);
                (2.0 * self.recent_rate() * dt_s).max(floor)
            }
        }
    }

    /// Folds a counted delta over `dt_s` seconds into the decaying maximum rate.
    fn observe_rate(&mut self, delta: u64, dt_s: f64) {
        if dt_s > 0.0 {
            let decayed = self.recent_rate() * 0.5f64.powf(dt_s / RATE_HALF_LIFE_S);
            let rate = decayed.max(delta as f64 / dt_s);
            // Saturating float-to-int conversion; rounding keeps a steady rate steady.
            self.rate_milli = (rate * 1000.0).round() as u64;
        }
    }

    /// Moves the baseline's time to `at` after a step of the wall clock, keeping its value (and a
    /// held zero's time by the same amount), so that the next delta covers `[at, next sample)` in the
    /// new time instead of the jump.
    pub fn rebase(&mut self, at: Millis) {
        if self.last.is_none() {
            return;
        }
        let shift = at.saturating_sub(self.at);
        if let Some(held) = &mut self.held {
            held.before_at = held.before_at.saturating_add(shift);
        }
        self.at = at;
    }

    /// Turns one raw sample into a step (the rules of [`StepKind`]) and moves the baseline to `raw`
    /// (except for an `Invalid` value, which leaves the state untouched).
    ///
    /// A sample older than the previous one is treated as taken at the previous sample's time.
    pub fn step(&mut self, cfg: &CounterConfig, raw: u64, at: Millis) -> CounterStep {
        if u128::from(raw) >= effective_modulus(cfg) {
            let t_from = if self.last.is_some() { self.at } else { at };
            return CounterStep {
                kind: StepKind::Invalid,
                delta: 0,
                t_from,
                t_to: at.max(t_from),
                raw,
            };
        }
        let Some(old) = self.last else {
            *self = CounterState {
                last: Some(raw),
                at,
                held: None,
                rate_milli: self.rate_milli,
            };
            return CounterStep {
                kind: StepKind::Baseline,
                delta: 0,
                t_from: at,
                t_to: at,
                raw,
            };
        };
        let at = at.max(self.at);
        let (kind, delta, t_from) = match self.held.take() {
            Some(held) => self.after_held_zero(held, raw),
            None => self.after_value(cfg, old, raw, at),
        };
        let (kind, delta) = self.guard(cfg, kind, delta, t_from, at);
        if kind == StepKind::HeldZero {
            self.held = Some(HeldZero {
                before: old,
                before_at: self.at,
            });
        }
        if matches!(
            kind,
            StepKind::Normal | StepKind::Wrap | StepKind::GlitchZero
        ) {
            self.observe_rate(delta, seconds_between(t_from, at));
        }
        self.last = Some(raw);
        self.at = at;
        CounterStep {
            kind,
            delta,
            t_from,
            t_to: at,
            raw,
        }
    }

    /// Classifies a sample that follows an ordinary accepted value.
    fn after_value(
        &self,
        cfg: &CounterConfig,
        old: u64,
        raw: u64,
        at: Millis,
    ) -> (StepKind, u64, Millis) {
        if raw >= old {
            return (StepKind::Normal, raw - old, self.at);
        }
        let modulus = effective_modulus(cfg);
        let (old_wide, raw_wide) = (u128::from(old), u128::from(raw));
        if cfg.wrap && old_wide < modulus && raw_wide < modulus {
            let window = self.wrap_window(cfg, modulus, seconds_between(self.at, at));
            let to_modulus = modulus - old_wide;
            if to_modulus as f64 <= window && raw as f64 <= window {
                // raw < old < modulus, so raw + modulus − old < modulus ≤ 2^64.
                let delta = u64::try_from(raw_wide + to_modulus)
                    .expect("a wrap delta is below the modulus, which is at most 2^64");
                return (StepKind::Wrap, delta, self.at);
            }
        }
        if raw == 0 {
            return (StepKind::HeldZero, 0, self.at);
        }
        self.decrease(cfg, raw)
    }

    /// Classifies the sample after a held zero: a glitch if it is back at or above the value
    /// before the zero, otherwise the zero was a real reset and the new value is the delta. The zero
    /// rule comes before `on_decrease`: counting up from a held zero is production under either policy.
    fn after_held_zero(&self, held: HeldZero, raw: u64) -> (StepKind, u64, Millis) {
        if raw >= held.before {
            (StepKind::GlitchZero, raw - held.before, held.before_at)
        } else {
            (StepKind::Reset, raw, self.at)
        }
    }

    fn decrease(&self, cfg: &CounterConfig, raw: u64) -> (StepKind, u64, Millis) {
        match cfg.on_decrease {
            OnDecrease::Reset => (StepKind::Reset, raw, self.at),
            OnDecrease::Ignore => (StepKind::IgnoredDecrease, 0, self.at),
        }
    }

    /// Plausibility guard: with a design rate, a counted delta `>= W` is `Rejected`.
    fn guard(
        &self,
        cfg: &CounterConfig,
        kind: StepKind,
        delta: u64,
        t_from: Millis,
        at: Millis,
    ) -> (StepKind, u64) {
        match cfg.design_rate {
            Some(rate) if delta > 0 => {
                let window = Self::plausibility_window(rate, seconds_between(t_from, at));
                if delta as f64 >= window {
                    (StepKind::Rejected, delta)
                } else {
                    (kind, delta)
                }
            }
            _ => (kind, delta),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(modulus: u64) -> CounterConfig {
        CounterConfig {
            modulus,
            wrap: true,
            on_decrease: OnDecrease::Reset,
            design_rate: None,
        }
    }

    /// Feeds `raws` one second apart and returns the steps.
    fn run(cfg: &CounterConfig, raws: &[u64]) -> Vec<CounterStep> {
        let mut state = CounterState::default();
        raws.iter()
            .enumerate()
            .map(|(i, &raw)| state.step(cfg, raw, 1_000 * i as i64))
            .collect()
    }

    fn kinds_and_deltas(steps: &[CounterStep]) -> Vec<(StepKind, u64)> {
        steps.iter().map(|step| (step.kind, step.delta)).collect()
    }

    fn counted(steps: &[CounterStep]) -> u64 {
        steps
            .iter()
            .filter(|step| step.kind.is_counted())
            .map(|step| step.delta)
            .sum()
    }

    #[test]
    fn given_design_example_1_2_8_10_0_4_when_reset_handling_then_total_is_13() {
        let steps = run(&config(1 << 32), &[1, 2, 8, 10, 0, 4]);
        use StepKind::*;
        assert_eq!(
            kinds_and_deltas(&steps),
            vec![
                (Baseline, 0),
                (Normal, 1),
                (Normal, 6),
                (Normal, 2),
                (HeldZero, 0),
                (Reset, 4)
            ]
        );
        assert_eq!(counted(&steps), 13);
    }

    #[test]
    fn given_each_decrease_policy_when_named_then_the_name_parses_back_as_serde_spells_it() {
        for policy in OnDecrease::ALL {
            assert_eq!(policy.name().parse::<OnDecrease>(), Ok(policy));
            assert_eq!(
                serde_json::to_value(policy).unwrap(),
                serde_json::json!(policy.name())
            );
        }
        assert_eq!(
            "drop".parse::<OnDecrease>().unwrap_err().to_string(),
            r#""drop" is not one of reset, ignore"#
        );
    }

    #[test]
    fn given_wall_clock_step_when_rebased_then_next_delta_covers_the_new_time_only() {
        let cfg = config(1 << 16);
        let mut state = CounterState::default();
        state.step(&cfg, 100, 10_000);
        // The clock stepped an hour back between two polls one second apart.
        state.rebase(10_000 - 3_600_000);
        let step = state.step(&cfg, 105, 10_000 - 3_599_000);
        assert_eq!(
            (step.kind, step.delta, step.t_from, step.t_to),
            (StepKind::Normal, 5, 10_000 - 3_600_000, 10_000 - 3_599_000)
        );
        // A held zero moves with the baseline, so a glitch spans the new time too.
        state.step(&cfg, 0, 10_000 - 3_598_000);
        state.rebase(20_000);
        let glitch = state.step(&cfg, 110, 21_000);
        assert_eq!(
            (glitch.kind, glitch.delta, glitch.t_from, glitch.t_to),
            (StepKind::GlitchZero, 5, 19_000, 21_000)
        );
        // Rebasing a channel never sampled leaves it unsampled.
        let mut fresh = CounterState::default();
        fresh.rebase(5_000);
        assert_eq!(fresh, CounterState::default());
    }

    #[test]
    fn given_modulus_10000_when_9900_then_100_then_wrap_of_200() {
        let steps = run(&config(10_000), &[9_900, 100]);
        assert_eq!(kinds_and_deltas(&steps)[1], (StepKind::Wrap, 200));
    }

    #[test]
    fn given_16_bit_counter_when_65535_then_0_then_3_then_plus_1_and_plus_3() {
        let steps = run(&config(1 << 16), &[65_535, 0, 3]);
        assert_eq!(
            kinds_and_deltas(&steps)[1..],
            [(StepKind::Wrap, 1), (StepKind::Normal, 3)]
        );
    }

    #[test]
    fn given_drop_to_zero_when_next_value_is_low_then_reset_counts_the_new_value() {
        let steps = run(&config(1 << 16), &[1_000, 0, 10]);
        assert_eq!(
            kinds_and_deltas(&steps)[1..],
            [(StepKind::HeldZero, 0), (StepKind::Reset, 10)]
        );
        assert_eq!((steps[2].t_from, steps[2].t_to), (1_000, 2_000));
    }

    #[test]
    fn given_drop_to_zero_when_next_value_is_back_above_then_glitch_counts_the_difference() {
        let steps = run(&config(1 << 16), &[1_000, 0, 1_002]);
        assert_eq!(
            kinds_and_deltas(&steps)[1..],
            [(StepKind::HeldZero, 0), (StepKind::GlitchZero, 2)]
        );
        // The zero was not real: the glitch delta covers the time since the sample before it.
        assert_eq!((steps[2].t_from, steps[2].t_to), (0, 2_000));
    }

    #[test]
    fn given_counter_at_3_billion_when_it_drops_to_5_then_reset_not_wrap() {
        let steps = run(&config(1 << 32), &[2_999_999_950, 3_000_000_000, 5]);
        assert_eq!(kinds_and_deltas(&steps)[2], (StepKind::Reset, 5));
    }

    #[test]
    fn given_counter_running_50_per_second_when_it_passes_2_pow_32_then_wrap_and_steady_deltas() {
        let start = (1u64 << 32) - 230;
        let raws: Vec<u64> = (0..10).map(|i| (start + 50 * i) % (1 << 32)).collect();
        let steps = run(&config(1 << 32), &raws);
        assert_eq!(steps.iter().filter(|s| s.kind == StepKind::Wrap).count(), 1);
        assert!(steps[1..]
            .iter()
            .all(|s| s.delta == 50 && s.kind.is_counted()));
    }

    #[test]
    fn given_fast_16_bit_counter_when_it_wraps_beyond_the_floor_then_the_observed_rate_widens_w() {
        // 2000/s: 65536 − 64000 = 1536 exceeds the floor (1024) but is within 2 × 2000 × 1 s.
        let steps = run(&config(1 << 16), &[60_000, 62_000, 64_000, 464]);
        assert_eq!(kinds_and_deltas(&steps)[3], (StepKind::Wrap, 2_000));
        // A fresh channel with no observed rate reads the same drop as a reset.
        let fresh = run(&config(1 << 16), &[64_000, 464]);
        assert_eq!(fresh[1].kind, StepKind::Reset);
    }

    #[test]
    fn given_wrap_disabled_when_counter_rolls_over_then_zero_is_held_and_read_as_reset() {
        let cfg = CounterConfig {
            wrap: false,
            ..config(1 << 16)
        };
        let steps = run(&cfg, &[65_535, 0, 3]);
        assert_eq!(
            kinds_and_deltas(&steps)[1..],
            [(StepKind::HeldZero, 0), (StepKind::Reset, 3)]
        );
    }

    #[test]
    fn given_on_decrease_ignore_when_counter_drops_then_nothing_counted_and_new_baseline() {
        let cfg = CounterConfig {
            on_decrease: OnDecrease::Ignore,
            ..config(1 << 32)
        };
        let steps = run(&cfg, &[100, 50, 60, 0, 5, 15]);
        use StepKind::*;
        // The drop to 50 is ignored; the drop to a held zero is a reset under either policy.
        assert_eq!(
            kinds_and_deltas(&steps),
            vec![
                (Baseline, 0),
                (IgnoredDecrease, 0),
                (Normal, 10),
                (HeldZero, 0),
                (Reset, 5),
                (Normal, 10)
            ]
        );
    }

    #[test]
    fn given_on_decrease_ignore_when_a_held_zero_is_followed_by_a_small_value_then_it_is_a_reset() {
        let cfg = CounterConfig {
            on_decrease: OnDecrease::Ignore,
            ..config(1 << 16)
        };
        // Before the fix the policy ran first: (IgnoredDecrease, 0), and the 10 units were lost.
        let steps = run(&cfg, &[1_000, 0, 10]);
        assert_eq!(
            kinds_and_deltas(&steps)[1..],
            [(StepKind::HeldZero, 0), (StepKind::Reset, 10)]
        );
        assert_eq!(counted(&steps), 10);
        // Back above the value before the zero it is still a glitch: +2.
        let steps = run(&cfg, &[1_000, 0, 1_002]);
        assert_eq!(
            kinds_and_deltas(&steps)[1..],
            [(StepKind::HeldZero, 0), (StepKind::GlitchZero, 2)]
        );
        // A drop that is not to zero is still ignored.
        let steps = run(&cfg, &[1_000, 10, 12]);
        assert_eq!(
            kinds_and_deltas(&steps)[1..],
            [(StepKind::IgnoredDecrease, 0), (StepKind::Normal, 2)]
        );
    }

    #[test]
    fn given_modulus_10000_when_a_raw_value_is_at_or_above_it_then_invalid_and_baseline_kept() {
        let cfg = config(10_000);
        // Before the fix: (Normal, 10), (Normal, 2345), then 5 read as a reset (+5): 2360 counted.
        let steps = run(&cfg, &[9_990, 10_000, 12_345, 5]);
        use StepKind::*;
        assert_eq!(
            kinds_and_deltas(&steps),
            vec![(Baseline, 0), (Invalid, 0), (Invalid, 0), (Wrap, 15)]
        );
        assert_eq!(counted(&steps), 15);
        // The wrap spans the time since the last valid sample.
        assert_eq!((steps[3].t_from, steps[3].t_to), (0, 3_000));
        assert!(steps
            .iter()
            .all(|s| s.kind.flag().is_none() || s.kind == Wrap));
        // An invalid first value sets no baseline; the first valid one does.
        let steps = run(&cfg, &[65_535, 42, 43]);
        assert_eq!(
            kinds_and_deltas(&steps),
            vec![(Invalid, 0), (Baseline, 0), (Normal, 1)]
        );
        // An invalid value while a zero is held leaves the zero held.
        let steps = run(&cfg, &[1_000, 0, 10_001, 1_002]);
        assert_eq!(kinds_and_deltas(&steps)[3], (GlitchZero, 2));
    }

    #[test]
    fn given_t_max_when_configured_then_the_plausibility_window_stops_growing_there() {
        let cfg = CounterConfig {
            design_rate: Some(DesignRate {
                units_per_s: 10.0,
                t_max_ms: 5_000,
            }),
            ..config(1 << 32)
        };
        // A minute without a poll: W = 2 × 10 × min(5 s, 60 s) = 100, so 150 units are quarantined.
        // Before the fix t_max was a fixed hour: W = 1200 and the 150 were counted.
        let mut state = CounterState::default();
        state.step(&cfg, 0, 0);
        let step = state.step(&cfg, 150, 60_000);
        assert_eq!((step.kind, step.delta), (StepKind::Rejected, 150));
        let step = state.step(&cfg, 249, 120_000);
        assert_eq!((step.kind, step.delta), (StepKind::Normal, 99));
        // Within t_max the window still scales with Δt: 2 × 10 × 2 s = 40.
        let step = state.step(&cfg, 288, 122_000);
        assert_eq!((step.kind, step.delta), (StepKind::Normal, 39));
        let step = state.step(&cfg, 328, 124_000);
        assert_eq!((step.kind, step.delta), (StepKind::Rejected, 40));
    }

    #[test]
    fn given_design_rate_when_a_delta_is_implausible_then_rejected_and_not_recounted() {
        let cfg = CounterConfig {
            design_rate: Some(DesignRate {
                units_per_s: 10.0,
                t_max_ms: 3_600_000,
            }),
            ..config(1 << 32)
        };
        // 1 s polls at 10/s: W = 20.
        let steps = run(&cfg, &[100, 110, 200, 210]);
        use StepKind::*;
        assert_eq!(
            kinds_and_deltas(&steps),
            vec![(Baseline, 0), (Normal, 10), (Rejected, 90), (Normal, 10)]
        );
        assert_eq!(counted(&steps), 20);
        // Δt is capped at t_max, one hour here: after 3 h away, W = 2 × 10 × 3600 = 72 000.
        let mut state = CounterState::default();
        state.step(&cfg, 0, 0);
        assert_eq!(state.step(&cfg, 71_999, 3 * 3_600_000).kind, Normal);
        assert_eq!(
            state.step(&cfg, 71_999 + 72_000, 6 * 3_600_000).kind,
            Rejected
        );
    }

    #[test]
    fn given_low_design_rate_when_one_unit_arrives_then_it_is_never_rejected() {
        let cfg = CounterConfig {
            design_rate: Some(DesignRate {
                units_per_s: 0.1,
                // The default for a PLC polled every second.
                t_max_ms: DEFAULT_T_MAX_POLL_INTERVALS * 1_000,
            }),
            ..config(1 << 16)
        };
        let steps = run(&cfg, &[7, 8, 8, 9]);
        assert!(steps.iter().all(|s| s.kind != StepKind::Rejected));
    }

    #[test]
    fn given_timestamps_when_stepping_then_t_from_is_the_previous_accepted_sample() {
        let cfg = config(1 << 32);
        let mut state = CounterState::default();
        let first = state.step(&cfg, 10, 5_000);
        assert_eq!(
            (first.kind, first.t_from, first.t_to),
            (StepKind::Baseline, 5_000, 5_000)
        );
        let second = state.step(&cfg, 12, 9_000);
        assert_eq!((second.t_from, second.t_to, second.raw), (5_000, 9_000, 12));
        // A sample stamped earlier than the previous one is read at the previous time.
        let third = state.step(&cfg, 13, 8_000);
        assert_eq!((third.t_from, third.t_to, third.delta), (9_000, 9_000, 1));
    }

    #[test]
    fn given_state_persisted_mid_sequence_when_restored_then_future_steps_are_identical() {
        let cfg = config(1 << 16);
        let raws = [60_000u64, 62_000, 64_000, 0, 464, 0, 5, 10, 65_530, 0, 70];
        for cut in 0..raws.len() {
            let mut live = CounterState::default();
            for (i, &raw) in raws[..cut].iter().enumerate() {
                live.step(&cfg, raw, 1_000 * i as i64);
            }
            let json = serde_json::to_string(&live).unwrap();
            let mut restored: CounterState = serde_json::from_str(&json).unwrap();
            assert_eq!(restored, live, "cut {cut}: {json}");
            for (i, &raw) in raws.iter().enumerate().skip(cut) {
                let at = 1_000 * i as i64;
                assert_eq!(
                    restored.step(&cfg, raw, at),
                    live.step(&cfg, raw, at),
                    "cut {cut}"
                );
            }
        }
        assert_eq!(
            serde_json::to_string(&CounterState::default()).unwrap(),
            r#"{"at":0,"rate_milli":0}"#
        );
    }

    #[test]
    fn given_u64_counter_when_modulus_is_full_range_then_wrap_arithmetic_does_not_overflow() {
        for modulus in [0, u64::MAX] {
            let steps = run(&config(modulus), &[u64::MAX - 5, 3]);
            assert_eq!(kinds_and_deltas(&steps)[1], (StepKind::Wrap, 9));
        }
    }

    proptest! {
        #[test]
        fn invalid_readings_anywhere_change_nothing_counted(
            modulus in prop::sample::select(vec![1u64 << 16, 10_000, 1 << 31]),
            raws in prop::collection::vec(0u64..12_000, 1..60),
            invalid_at in prop::collection::vec(any::<bool>(), 60),
        ) {
            let cfg = config(modulus);
            let raws: Vec<u64> = raws.iter().map(|raw| raw % modulus).collect();
            let mut clean = CounterState::default();
            let mut noisy = CounterState::default();
            let mut at = 0;
            for (raw, invalid) in raws.iter().zip(&invalid_at) {
                at += 1_000;
                if *invalid {
                    let step = noisy.step(&cfg, modulus + raw, at);
                    prop_assert_eq!((step.kind, step.delta), (StepKind::Invalid, 0));
                    at += 1_000;
                }
                let expected = clean.step(&cfg, *raw, at);
                let got = noisy.step(&cfg, *raw, at);
                prop_assert_eq!((got.kind, got.delta), (expected.kind, expected.delta));
            }
        }

        #[test]
        fn counted_deltas_equal_true_increments_across_random_wraps(
            modulus in prop::sample::select(vec![1u64 << 16, 10_000, 1 << 32, 1 << 31]),
            start_fraction in 0.0f64..1.0,
            increments in prop::collection::vec(0u64..100, 1..400),
            gaps in prop::collection::vec(500i64..3_000, 400),
        ) {
            let cfg = config(modulus);
            let mut state = CounterState::default();
            let mut truth = (start_fraction * modulus as f64) as u64 % modulus;
            let mut at = 0;
            state.step(&cfg, truth, at);
            let mut total = 0;
            for (increment, gap) in increments.iter().zip(&gaps) {
                truth = (truth + increment) % modulus;
                at += gap;
                let step = state.step(&cfg, truth, at);
                prop_assert!(matches!(step.kind, StepKind::Normal | StepKind::Wrap), "{:?}", step);
                total += step.delta;
            }
            prop_assert_eq!(total, increments.iter().sum::<u64>());
        }
    }
}
