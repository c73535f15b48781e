//! Pure production model of one simulated machine: a seeded per-cycle step, the ground truth it keeps and the
//! register image it shows. No clock, no I/O and no Modbus types: the PLC server drives [`MachineModel::step`]
//! from a timer, tests call it directly.

mod spec;

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use spec::{
    CounterLayout, MachineSpec, SpecError, BIT_COUNT, DEFECTIVE_OFFSET, MAX_REASONS,
    PRODUCED_OFFSET, REASONS_OFFSET, REGISTER_COUNT, STATE_OFFSET,
};

/// Shortest stop, in cycles, once a random stop starts.
const MIN_STOP_CYCLES: u32 = 2;
/// Longest stop, in cycles.
const MAX_STOP_CYCLES: u32 = 6;

/// What the machine is doing, as shown in the state register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    /// Producing one unit per cycle.
    Running,
    /// Stopped on purpose (changeover, break).
    PlannedStop,
    /// Stopped by a fault.
    Fault,
}

impl MachineState {
    /// State register code: 1 running, 2 planned stop, 3 fault.
    pub fn code(self) -> u16 {
        match self {
            MachineState::Running => 1,
            MachineState::PlannedStop => 2,
            MachineState::Fault => 3,
        }
    }

    /// Bit offset (from `base_address`) of the coil that is set while in this state.
    pub fn bit_offset(self) -> u16 {
        match self {
            MachineState::Running => 0,
            MachineState::PlannedStop => 1,
            MachineState::Fault => 2,
        }
    }
}

/// Exact ground truth: units made since the simulator started, independent of any raw register value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truth {
    /// Units produced (good and defective).
    pub produced: u64,
    /// Units that were defective.
    pub defective: u64,
    /// Defective units per reason; a reason appears once it has occurred.
    pub by_reason: BTreeMap<String, u64>,
}

/// What one cycle did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleOutcome {
    /// A good unit was made.
    Good,
    /// A defective unit was made; `reason` indexes `MachineSpec::reasons` (None when there are no reasons).
    Defective {
        /// Index of the reason in the spec.
        reason: Option<usize>,
    },
    /// No unit: the machine was (or just went) stopped in this state.
    Stopped(MachineState),
}

/// One machine's seeded model: state, ground truth and raw counters, advanced one cycle at a time.
#[derive(Debug, Clone)]
pub struct MachineModel {
    spec: MachineSpec,
    rng: ChaCha8Rng,
    truth: Truth,
    state: MachineState,
    stop_cycles_left: u32,
    cycles: u64,
    raw_produced: u32,
    raw_defective: u32,
    raw_reasons: Vec<u16>,
}

impl MachineModel {
    /// A running machine whose random stream depends only on `seed` and its unit id.
    pub fn new(spec: MachineSpec, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // One stream per unit: a machine's sequence does not depend on how its steps interleave with others'.
        rng.set_stream(u64::from(spec.unit_id));
        Self {
            rng,
            truth: Truth::default(),
            state: MachineState::Running,
            stop_cycles_left: 0,
            cycles: 0,
            raw_produced: spec.initial_produced,
            raw_defective: 0,
            raw_reasons: vec![0; spec.reasons.len()],
            spec,
        }
    }

    /// Advances one cycle. While stopped the machine counts the stop down and resumes after it; while running it
    /// either starts a random stop (planned or fault, 2..=6 cycles) or makes one unit, defective or not.
    pub fn step(&mut self) -> CycleOutcome {
        self.cycles += 1;
        if self.state != MachineState::Running {
            let stopped_in = self.state;
            self.stop_cycles_left = self.stop_cycles_left.saturating_sub(1);
            if self.stop_cycles_left == 0 {
                self.state = MachineState::Running;
            }
            return CycleOutcome::Stopped(stopped_in);
        }
        if self.rng.random_bool(self.spec.stop_probability) {
            self.state = if self.rng.random_bool(0.5) {
                MachineState::PlannedStop
            } else {
                MachineState::Fault
            };
            self.stop_cycles_left = self.rng.random_range(MIN_STOP_CYCLES..=MAX_STOP_CYCLES);
            return CycleOutcome::Stopped(self.state);
        }
        self.truth.produced += 1;
        self.raw_produced = self.raw_produced.wrapping_add(1);
        if !self.rng.random_bool(self.spec.defect_probability) {
            return CycleOutcome::Good;
        }
        self.truth.defective += 1;
        self.raw_defective = self.raw_defective.wrapping_add(1);
        let reason = if self.spec.reasons.is_empty() {
            None
        } else {
            let index = self.rng.random_range(0..self.spec.reasons.len());
            *self
                .truth
                .by_reason
                .entry(self.spec.reasons[index].clone())
                .or_insert(0) += 1;
            self.raw_reasons[index] = self.raw_reasons[index].wrapping_add(1);
            Some(index)
        };
        CycleOutcome::Defective { reason }
    }

    /// The spec the model was built from.
    pub fn spec(&self) -> &MachineSpec {
        &self.spec
    }

    /// Ground truth since construction.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// Current state.
    pub fn state(&self) -> MachineState {
        self.state
    }

    /// Cycles stepped since construction.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// Raw produced register value: `initial_produced + produced` modulo 2^32, unless overwritten.
    pub fn raw_produced(&self) -> u32 {
        self.raw_produced
    }

    /// Overwrites the raw produced register (a PLC reset, or a jump near the wrap point); later units count
    /// on from `value`. The ground truth is not touched.
    pub fn set_raw_produced(&mut self, value: u32) {
        self.raw_produced = value;
    }

    /// Sets every raw counter (produced, defective, per reason) to 0, as a PLC does after a reboot that lost its
    /// retained memory. The ground truth is not touched.
    pub fn reset_counters(&mut self) {
        self.raw_produced = 0;
        self.raw_defective = 0;
        self.raw_reasons.iter_mut().for_each(|count| *count = 0);
    }

    /// The holding (and input) registers at offsets 0..[`REGISTER_COUNT`] from `base_address`.
    pub fn register_image(&self) -> [u16; REGISTER_COUNT as usize] {
        let mut image = [0u16; REGISTER_COUNT as usize];
        let layout = self.spec.counter_layout;
        let put_u32 = |image: &mut [u16], offset: u16, value: u32| {
            let offset = usize::from(offset);
            image[offset..offset + 2].copy_from_slice(&layout.words(value));
        };
        put_u32(&mut image, PRODUCED_OFFSET, self.raw_produced);
        put_u32(&mut image, DEFECTIVE_OFFSET, self.raw_defective);
        for (index, count) in self.raw_reasons.iter().enumerate() {
            image[usize::from(REASONS_OFFSET) + index] = *count;
        }
        image[usize::from(STATE_OFFSET)] = self.state.code();
        image
    }

    /// The coils (and discrete inputs) at offsets 0..[`BIT_COUNT`]: running, planned stop, fault.
    pub fn bit_image(&self) -> [bool; BIT_COUNT as usize] {
        let mut bits = [false; BIT_COUNT as usize];
        bits[usize::from(self.state.bit_offset())] = true;
        bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(unit_id: u8) -> MachineSpec {
        MachineSpec {
            defect_probability: 0.2,
            stop_probability: 0.05,
            ..MachineSpec::new(unit_id)
        }
    }

    fn run(model: &mut MachineModel, cycles: u64) {
        for _ in 0..cycles {
            model.step();
        }
    }

    #[test]
    fn given_same_seed_when_stepping_equally_then_models_agree() {
        let mut first = MachineModel::new(spec(1), 42);
        let mut second = MachineModel::new(spec(1), 42);
        for _ in 0..2_000 {
            assert_eq!(first.step(), second.step());
        }
        assert_eq!(first.truth(), second.truth());
        assert_eq!(first.register_image(), second.register_image());
    }

    #[test]
    fn given_different_seeds_when_stepping_then_truths_differ() {
        let mut first = MachineModel::new(spec(1), 42);
        let mut second = MachineModel::new(spec(1), 43);
        run(&mut first, 2_000);
        run(&mut second, 2_000);
        assert_ne!(first.truth(), second.truth());
    }

    #[test]
    fn given_steps_when_counting_outcomes_then_truth_and_registers_agree() {
        let mut model = MachineModel::new(
            MachineSpec {
                initial_produced: 100,
                ..spec(3)
            },
            7,
        );
        let (mut good, mut defective, mut stopped) = (0u64, 0u64, 0u64);
        let mut per_reason = vec![0u64; model.spec().reasons.len()];
        for _ in 0..5_000 {
            match model.step() {
                CycleOutcome::Good => good += 1,
                CycleOutcome::Defective { reason } => {
                    defective += 1;
                    per_reason[reason.expect("spec has reasons")] += 1;
                }
                CycleOutcome::Stopped(_) => stopped += 1,
            }
        }
        let truth = model.truth().clone();
        assert_eq!(good + defective + stopped, model.cycles());
        assert_eq!(truth.produced, good + defective);
        assert_eq!(truth.defective, defective);
        assert!(
            stopped > 0 && defective > 0,
            "the spec makes both stops and defects"
        );
        let image = model.register_image();
        assert_eq!(
            (u64::from(image[0]) << 16) | u64::from(image[1]),
            100 + truth.produced
        );
        assert_eq!(
            (u64::from(image[2]) << 16) | u64::from(image[3]),
            truth.defective
        );
        for (index, reason) in model.spec().reasons.iter().enumerate() {
            assert_eq!(
                truth.by_reason.get(reason).copied().unwrap_or(0),
                per_reason[index]
            );
            assert_eq!(u64::from(image[10 + index]), per_reason[index]);
        }
        assert_eq!(image[20], model.state().code());
    }

    #[test]
    fn given_no_stops_and_no_defects_when_stepping_then_every_cycle_makes_a_good_unit() {
        let spec = MachineSpec {
            defect_probability: 0.0,
            stop_probability: 0.0,
            ..MachineSpec::new(1)
        };
        let mut model = MachineModel::new(spec, 1);
        for _ in 0..100 {
            assert_eq!(model.step(), CycleOutcome::Good);
        }
        assert_eq!(model.truth().produced, 100);
        assert_eq!(model.bit_image(), [true, false, false]);
    }

    #[test]
    fn given_a_stop_when_stepping_then_it_lasts_between_two_and_six_cycles() {
        let spec = MachineSpec {
            stop_probability: 1.0,
            ..MachineSpec::new(1)
        };
        let mut model = MachineModel::new(spec, 5);
        let first = model.step();
        let CycleOutcome::Stopped(state) = first else {
            panic!("stop probability 1 stops at once: {first:?}")
        };
        assert_ne!(state, MachineState::Running);
        let mut extra = 0;
        while model.state() != MachineState::Running {
            assert_eq!(model.step(), CycleOutcome::Stopped(state));
            extra += 1;
        }
        assert!(
            (MIN_STOP_CYCLES..=MAX_STOP_CYCLES).contains(&extra),
            "stop lasted {extra} more cycles"
        );
        assert_eq!(model.truth().produced, 0);
    }

    #[test]
    fn given_counter_near_wrap_when_producing_then_raw_wraps_and_truth_does_not() {
        let spec = MachineSpec {
            stop_probability: 0.0,
            initial_produced: u32::MAX - 1,
            ..MachineSpec::new(1)
        };
        let mut model = MachineModel::new(spec, 9);
        run(&mut model, 5);
        assert_eq!(model.truth().produced, 5);
        assert_eq!(model.raw_produced(), 3);
        assert_eq!(model.register_image()[..2], [0, 3]);
    }

    #[test]
    fn given_cdab_layout_and_a_reset_when_reading_the_image_then_words_are_swapped_and_counters_zero(
    ) {
        let spec = MachineSpec {
            stop_probability: 0.0,
            defect_probability: 0.0,
            initial_produced: 0x0001_FFFF,
            counter_layout: CounterLayout::Cdab,
            ..MachineSpec::new(1)
        };
        let mut model = MachineModel::new(spec, 9);
        run(&mut model, 2);
        assert_eq!(model.register_image()[..2], [0x0001, 0x0002]);
        model.reset_counters();
        assert_eq!(model.register_image()[..4], [0, 0, 0, 0]);
        assert_eq!(model.truth().produced, 2);
    }

    #[test]
    fn given_forced_raw_value_when_producing_then_raw_counts_on_and_truth_is_untouched() {
        let spec = MachineSpec {
            stop_probability: 0.0,
            ..MachineSpec::new(1)
        };
        let mut model = MachineModel::new(spec, 9);
        run(&mut model, 10);
        model.set_raw_produced(0);
        run(&mut model, 4);
        assert_eq!(model.raw_produced(), 4);
        assert_eq!(model.truth().produced, 14);
    }
}
