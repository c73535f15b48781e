//! The per-pass work looks only at the machines touched since the last pass (`attention`): a processor that
//! does so emits exactly what one visiting every machine at every pass emits, whatever the order of the PLCs'
//! samples, failed polls, clock steps back and passes without a sample.

use proptest::prelude::*;

use super::attention::covers;
use super::test_core::{agent_section, MINUTE, SECOND, T0};
use super::*;
use crate::poller::TagError;

const PLCS: usize = 3;
const MACHINES_PER_PLC: usize = 2;

/// Three PLCs with two machines each (their own produced counter), 10 s and 1 min windows with different
/// graces, state inferred from the counters.
fn fleet() -> Arc<Config> {
    let mut toml =
        agent_section(r#""10s", "1m""#) + "grace = { \"10s\" = \"2s\", \"1m\" = \"5s\" }\n";
    for plc in 0..PLCS {
        toml += &format!(
            "\n[[plc]]\nid = \"plc-{plc}\"\naddress = \"127.0.0.1:{}\"\npoll_interval = \"1s\"\n",
            5020 + plc
        );
    }
    for plc in 0..PLCS {
        for machine in 0..MACHINES_PER_PLC {
            toml += &format!(
                "\n[[machine]]\nid = \"m-{plc}-{machine}\"\nline = \"line-a\"\nplc = \"plc-{plc}\"\n\
                 ideal_cycle_time = \"1s\"\n\
                 counters.produced = {{ table = \"holding\", address = {machine}, type = \"u16\" }}\n"
            );
        }
    }
    Arc::new(Config::from_toml(&toml, "test.toml", false).unwrap())
}

fn processor(config: &Arc<Config>, plans: &[ReadPlan]) -> Processor {
    Processor::restore(
        config.clone(),
        crate::supervisor::identity(config),
        plans,
        BTreeMap::new(),
        Vec::new(),
        crate::clock::system(),
    )
}

/// One PLC's poll: every machine's counter reads `produced`, or the connection failed.
fn sample(
    plan: &ReadPlan,
    plc: usize,
    seq: u64,
    mono: Instant,
    utc: Millis,
    read: Option<u16>,
) -> Sample {
    let readings = (0..plan.tags.len())
        .map(|_| match read {
            Some(value) => Ok(vec![value]),
            None => Err(TagError::Transport("connection refused".into())),
        })
        .collect();
    Sample {
        plc,
        seq,
        mono,
        utc,
        readings,
        events: Vec::new(),
    }
}

/// What happens between two passes.
#[derive(Debug, Clone)]
enum Step {
    /// PLC `plc` is polled `advance` ms after the previous step; its counters moved by `units` (or it failed).
    Poll {
        plc: usize,
        advance: Millis,
        units: Option<u16>,
    },
    /// A pass with no sample (a timer), `advance` ms later.
    Timer { advance: Millis },
    /// The wall clock steps back by `back` ms (the monotonic clock goes on).
    ClockBack { back: Millis },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..PLCS, 0..1_500i64, prop::option::weighted(0.9, 0u16..20))
            .prop_map(|(plc, advance, units)| Step::Poll { plc, advance, units }),
        2 => (0..20 * SECOND).prop_map(|advance| Step::Timer { advance }),
        1 => (SECOND..3 * MINUTE).prop_map(|back| Step::ClockBack { back }),
    ]
}

/// The drafts queued since the last call, as (topic, body).
fn drafts(processor: &mut Processor) -> Vec<(String, serde_json::Value)> {
    processor
        .take_drafts()
        .into_iter()
        .map(|(_, draft)| (draft.topic, draft.body))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_pass_that_looks_only_at_touched_machines_emits_what_visiting_every_machine_emits(
        steps in prop::collection::vec(step(), 1..150),
    ) {
        let config = fleet();
        let plans: Vec<ReadPlan> = (0..PLCS).map(|plc| ReadPlan::for_plc(&config, plc)).collect();
        let mut noting = processor(&config, &plans);
        let mut visiting = processor(&config, &plans);
        let mono0 = Instant::now();
        let (mut utc, mut mono, mut seq) = (T0, 0i64, 0u64);
        let mut counters = [0u16; PLCS];
        // A new processor looks at every machine once.
        prop_assert_eq!(noting.attention.refresh(&noting.machines), PLCS * MACHINES_PER_PLC);
        for step in steps {
            match step {
                Step::Poll { plc, advance, units } => {
                    utc += advance;
                    mono += advance;
                    seq += 1;
                    if let Some(units) = units {
                        counters[plc] = counters[plc].wrapping_add(units);
                    }
                    let at = mono0 + Duration::from_millis(mono as u64);
                    let read = units.map(|_| counters[plc]);
                    let sample = sample(&plans[plc], plc, seq, at, utc, read);
                    noting.on_sample(&sample);
                    visiting.on_sample(&sample);
                    // Only the sampled PLC's machines are looked at by the next pass.
                    prop_assert_eq!(noting.attention.refresh(&noting.machines), MACHINES_PER_PLC);
                }
                Step::Timer { advance } => {
                    utc += advance;
                    mono += advance;
                }
                Step::ClockBack { back } => utc -= back,
            }
            // The pass as the task makes it, and the same pass visiting every machine.
            if noting.loads_waiting() {
                noting.load_deferred_with(|_, _| Vec::new());
            }
            noting.close_if_due(utc);
            visiting.load_deferred_with(|_, _| Vec::new());
            visiting.close_due(utc);
            prop_assert_eq!(drafts(&mut noting), drafts(&mut visiting), "at {}", utc);
            // After the pass nothing is due, and the merged bounds cover every machine's.
            noting.attention.refresh(&noting.machines);
            prop_assert!(!noting.attention.close_due_at(utc), "still due at {}", utc);
            let bounds = noting.attention.bounds();
            for machine in &noting.machines {
                for acc in &machine.windows {
                    prop_assert!(covers(bounds, acc), "{:?} does not cover {:?}", bounds, acc.due_bounds());
                }
            }
        }
    }
}

#[test]
fn routine_work_is_seen_after_a_sample_and_gone_once_collected() {
    let config = fleet();
    let plans: Vec<ReadPlan> = (0..PLCS)
        .map(|plc| ReadPlan::for_plc(&config, plc))
        .collect();
    let mut processor = processor(&config, &plans);
    processor.take_drafts();
    assert_eq!(processor.work(), commit_policy::Work::Nothing);
    let sample = sample(&plans[1], 1, 1, Instant::now(), T0, Some(5));
    processor.on_sample(&sample);
    assert_eq!(processor.work(), commit_policy::Work::Routine);
    processor.take_drafts();
    assert_eq!(processor.work(), commit_policy::Work::Nothing);
}
