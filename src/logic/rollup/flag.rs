//! The provenance flags of a window, one closed set serialized by snake_case name.

use serde::{Deserialize, Serialize};

/// A provenance flag of a window: why its figures are not a plain measurement. The serialized form
/// (snake_case) is what window records persist and rollup and live payloads carry; sets of flags
/// order by that name, so a persisted or published flag list keeps its alphabetical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// The window received part of a delta split across a window boundary.
    Estimated,
    /// Time or counts of the window were not read (failed polls, a counter that read as an error);
    /// the counts are carried to a later window by the cumulative counter.
    Gap,
    /// A counter wrapped around its width.
    Wrap,
    /// A counter went down (reset, or a decrease with `on_decrease = ignore`).
    Reset,
    /// A counter read zero for one poll and came back: the zero was a glitch.
    GlitchZero,
    /// A counter delta above the plausibility window was quarantined, not counted.
    Rejected,
    /// No state register: the machine state was inferred from counter movement.
    StateInferred,
    /// The oldest kept window, which took a fact older than the restatement horizon.
    Late,
    /// The window is around a step of the wall clock (the last one before it, the first one after
    /// it) or received facts measured across it.
    ClockStep,
    /// No shift calendar is configured: all observed time counts as in plan.
    NoCalendar,
}

impl Flag {
    /// Every flag, in declaration order.
    pub const ALL: [Flag; 10] = [
        Flag::Estimated,
        Flag::Gap,
        Flag::Wrap,
        Flag::Reset,
        Flag::GlitchZero,
        Flag::Rejected,
        Flag::StateInferred,
        Flag::Late,
        Flag::ClockStep,
        Flag::NoCalendar,
    ];

    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Estimated => "estimated",
            Flag::Gap => "gap",
            Flag::Wrap => "wrap",
            Flag::Reset => "reset",
            Flag::GlitchZero => "glitch_zero",
            Flag::Rejected => "rejected",
            Flag::StateInferred => "state_inferred",
            Flag::Late => "late",
            Flag::ClockStep => "clock_step",
            Flag::NoCalendar => "no_calendar",
        }
    }
}

impl Ord for Flag {
    /// By name, so that a `BTreeSet<Flag>` serializes in the alphabetical order persisted records
    /// and published payloads have always had.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Flag {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
