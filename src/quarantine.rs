//! `shopfloor-agent quarantine`: lists the counter deltas the plausibility guard quarantined (`list`) and records
//! an operator's release of one (`release`), on the agent's database file, also while the agent runs. The agent
//! applies a release within seconds (or at its next start): it counts the amount over the delta's original
//! interval and restates the windows concerned. This module only reads and writes the request table through
//! [`QuarantineDb`]; it never opens the store the way the agent does (no migration, no check, no move aside).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context as _;
use serde_json::json;

use crate::config::Config;
use crate::logic::window::rfc3339;
use crate::logic::Millis;
use crate::store::{database_path, QuarantineDb, QuarantinedDelta, ReleaseStatus};

/// Machine and counter names by counter key, for the counters of `config`.
fn counter_names(config: &Config) -> BTreeMap<String, (String, String)> {
    config
        .machines
        .iter()
        .flat_map(|machine| {
            machine.counters().into_iter().map(move |(name, _)| {
                (
                    machine.counter_key(name),
                    (machine.id.clone(), name.to_owned()),
                )
            })
        })
        .collect()
}

/// The quarantined deltas of the agent configured by `config`, as a text table or as a JSON array.
pub fn list(config: &Config, json: bool) -> anyhow::Result<String> {
    let path = database_path(&config.agent.data_dir);
    let deltas = QuarantineDb::open(&path, false)
        .and_then(|db| db.list())
        .with_context(|| format!("listing quarantined deltas in {}", path.display()))?;
    let names = counter_names(config);
    Ok(if json {
        render_json(config, &names, &deltas)
    } else {
        render_text(config, &names, &deltas)
    })
}

/// Records the release of the quarantined delta `id` at `now` and says what happens next. An unknown id, a
/// delta released before, or one whose counter `config` does not have is an error.
pub fn release(config: &Config, id: i64, now: Millis) -> anyhow::Result<String> {
    let path = database_path(&config.agent.data_dir);
    let context = || format!("releasing delta {id} in {}", path.display());
    let mut db = QuarantineDb::open(&path, true).with_context(context)?;
    let names = counter_names(config);
    if let Some(delta) = db.list().with_context(context)?.iter().find(|d| d.id == id) {
        anyhow::ensure!(
            names.contains_key(&delta.key),
            "delta {id} is of counter {:?}, which {} does not configure; the agent could not count it",
            delta.key,
            config.source
        );
    }
    let delta = db.request_release(id, now).with_context(context)?;
    let (machine, counter) = describe(&names, &delta);
    let tz = &config.agent.timezone;
    Ok(format!(
        "Release of delta {id} recorded: {} units of {machine} {counter} over {} .. {}.\n\
         The agent counts them within seconds (or at its next start) and restates the windows of that interval.\n",
        delta.amount,
        rfc3339(delta.t_from, tz),
        rfc3339(delta.t_to, tz),
    ))
}

/// The machine and counter of a delta; a counter the configuration does not have shows its key.
fn describe(
    names: &BTreeMap<String, (String, String)>,
    delta: &QuarantinedDelta,
) -> (String, String) {
    names
        .get(&delta.key)
        .cloned()
        .unwrap_or_else(|| ("(not configured)".to_owned(), delta.key.clone()))
}

fn render_text(
    config: &Config,
    names: &BTreeMap<String, (String, String)>,
    deltas: &[QuarantinedDelta],
) -> String {
    let tz = &config.agent.timezone;
    let mut out = String::new();
    if deltas.is_empty() {
        out.push_str("No quarantined deltas in the delta log.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:>8}  {:<16} {:<16} {:>12}  {:<29}  {:<29}  status",
        "id", "machine", "counter", "amount", "from", "to (when read)"
    );
    for delta in deltas {
        let (machine, counter) = describe(names, delta);
        let _ = writeln!(
            out,
            "{:>8}  {:<16} {:<16} {:>12}  {:<29}  {:<29}  {}",
            delta.id,
            machine,
            counter,
            delta.amount,
            rfc3339(delta.t_from, tz),
            rfc3339(delta.t_to, tz),
            delta.release.name()
        );
    }
    out
}

fn render_json(
    config: &Config,
    names: &BTreeMap<String, (String, String)>,
    deltas: &[QuarantinedDelta],
) -> String {
    let tz = &config.agent.timezone;
    let rows: Vec<serde_json::Value> = deltas
        .iter()
        .map(|delta| {
            let (machine, counter) = describe(names, delta);
            let (requested_at, released_at) = match delta.release {
                ReleaseStatus::Quarantined => (None, None),
                ReleaseStatus::Requested { requested_at } => (Some(requested_at), None),
                ReleaseStatus::Released {
                    requested_at,
                    released_at,
                } => (Some(requested_at), Some(released_at)),
            };
            json!({
                "id": delta.id,
                "machine": machine,
                "counter": counter,
                "key": delta.key,
                "amount": delta.amount,
                "raw": delta.raw,
                "from": rfc3339(delta.t_from, tz),
                "to": rfc3339(delta.t_to, tz),
                "when": rfc3339(delta.t_to, tz),
                "status": delta.release.name(),
                "requested_at": requested_at.map(|at| rfc3339(at, tz)),
                "released_at": released_at.map(|at| rfc3339(at, tz)),
            })
        })
        .collect();
    let mut text = serde_json::Value::Array(rows).to_string();
    text.push('\n');
    text
}
