//! What a reloaded configuration changes against the running one, pure: the PLCs and machines added,
//! removed and changed, the keys that only a restart can apply, and which pollers keep running. No I/O;
//! the supervisor's `reload` applies the result.

use std::fmt;

use crate::config::Config;
use crate::poller::ReadPlan;

/// Whether two configurations agree on one key.
type SameKey = fn(&Config, &Config) -> bool;

/// The keys a running agent cannot take over: they name the agent (topics, the store, the MQTT session)
/// or size its store. A reload that changes any of them is refused as a whole.
const RESTART_KEYS: [(&str, SameKey); 16] = [
    ("agent.site", |a, b| a.agent.site == b.agent.site),
    ("agent.gateway", |a, b| a.agent.gateway == b.agent.gateway),
    ("agent.data_dir", |a, b| {
        a.agent.data_dir == b.agent.data_dir
    }),
    ("store.max_bytes", |a, b| {
        a.store.max_bytes == b.store.max_bytes
    }),
    ("mqtt.host", |a, b| a.mqtt.host == b.mqtt.host),
    ("mqtt.port", |a, b| a.mqtt.port == b.mqtt.port),
    ("mqtt.client_id", |a, b| {
        a.mqtt.client_id == b.mqtt.client_id
    }),
    ("mqtt.topic_prefix", |a, b| {
        a.mqtt.topic_prefix == b.mqtt.topic_prefix
    }),
    ("mqtt.keep_alive", |a, b| {
        a.mqtt.keep_alive == b.mqtt.keep_alive
    }),
    ("mqtt.max_inflight", |a, b| {
        a.mqtt.max_inflight == b.mqtt.max_inflight
    }),
    ("mqtt.connect_timeout", |a, b| {
        a.mqtt.connect_timeout == b.mqtt.connect_timeout
    }),
    ("mqtt.reconnect_max", |a, b| {
        a.mqtt.reconnect_max == b.mqtt.reconnect_max
    }),
    ("mqtt.protocol", |a, b| a.mqtt.protocol == b.mqtt.protocol),
    ("mqtt.drain_rate", |a, b| {
        a.mqtt.drain_rate == b.mqtt.drain_rate
    }),
    ("mqtt.max_packet_size", |a, b| {
        a.mqtt.max_packet_size == b.mqtt.max_packet_size
    }),
    ("mqtt.tls / mqtt.username / mqtt.password_file", |a, b| {
        a.mqtt.tls == b.mqtt.tls && a.mqtt.credentials == b.mqtt.credentials
    }),
];

/// The differences between the running configuration and a newly loaded one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConfigChanges {
    /// Keys that changed but need a restart (TOML paths); when any, nothing is applied.
    pub(crate) restart_needed: Vec<&'static str>,
    /// Ids of PLCs only in the new configuration.
    pub(crate) plcs_added: Vec<String>,
    /// Ids of PLCs only in the running configuration.
    pub(crate) plcs_removed: Vec<String>,
    /// Ids of PLCs in both whose connection settings or read plan changed.
    pub(crate) plcs_changed: Vec<String>,
    /// Ids of machines only in the new configuration.
    pub(crate) machines_added: Vec<String>,
    /// Ids of machines only in the running configuration.
    pub(crate) machines_removed: Vec<String>,
    /// Ids of machines in both whose settings (registers, targets, PLC, line …) changed.
    pub(crate) machines_changed: Vec<String>,
    /// Whether `[calendar]` changed (every poller then restarts on the new shift boundaries).
    pub(crate) calendar_changed: bool,
    /// Whether the rest of `[agent]` or `[store]` changed (periods, graces, intervals, horizon …).
    pub(crate) agent_changed: bool,
    /// Whether the configuration hash changed (a change in comments alone changes only this).
    pub(crate) hash_changed: bool,
}

impl ConfigChanges {
    /// Compares the running configuration `old` with `new`.
    pub(crate) fn between(old: &Config, new: &Config) -> ConfigChanges {
        let restart_needed = RESTART_KEYS
            .iter()
            .filter(|(_, same)| !same(old, new))
            .map(|(key, _)| *key)
            .collect();
        let (plcs_added, plcs_removed, plcs_changed) = diff_by_id(
            &old.plcs.iter().map(|p| &p.id).collect::<Vec<_>>(),
            &new.plcs.iter().map(|p| &p.id).collect::<Vec<_>>(),
            |o, n| old.plcs[o] == new.plcs[n] && plan_of(old, o) == plan_of(new, n),
        );
        let (machines_added, machines_removed, machines_changed) = diff_by_id(
            &old.machines.iter().map(|m| &m.id).collect::<Vec<_>>(),
            &new.machines.iter().map(|m| &m.id).collect::<Vec<_>>(),
            |o, n| {
                let (before, after) = (&old.machines[o], &new.machines[n]);
                before.plc_id(old) == after.plc_id(new) && same_machine(before, after)
            },
        );
        ConfigChanges {
            restart_needed,
            plcs_added,
            plcs_removed,
            plcs_changed,
            machines_added,
            machines_removed,
            machines_changed,
            calendar_changed: old.calendar != new.calendar,
            agent_changed: !same_agent_settings(old, new),
            hash_changed: old.config_hash != new.config_hash,
        }
    }

    /// Whether the new configuration is the running one.
    pub(crate) fn is_empty(&self) -> bool {
        *self == ConfigChanges::default()
    }
}

impl fmt::Display for ConfigChanges {
    /// The one-line summary of a reload, e.g. `plcs +[plc-b] -[] ~[plc-a]; machines +[m2] -[] ~[m1]; calendar`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plcs +{:?} -{:?} ~{:?}; machines +{:?} -{:?} ~{:?}",
            self.plcs_added,
            self.plcs_removed,
            self.plcs_changed,
            self.machines_added,
            self.machines_removed,
            self.machines_changed
        )?;
        if self.calendar_changed {
            write!(f, "; calendar")?;
        }
        if self.agent_changed {
            write!(f, "; agent settings")?;
        }
        Ok(())
    }
}

/// The pollers of the running configuration that keep running under the new one: a PLC at the same index
/// with the same settings and read plan, and an unchanged calendar. Returned as `keep[new index]`, the old
/// index that keeps polling for it; every other old poller stops and every other new one starts. A PLC
/// whose index moved (one before it was removed) restarts too, because samples name their PLC by index.
pub(crate) fn kept_pollers(
    old: &Config,
    old_plans: &[ReadPlan],
    new: &Config,
    new_plans: &[ReadPlan],
) -> Vec<bool> {
    (0..new.plcs.len())
        .map(|index| {
            old.calendar == new.calendar
                && old.plcs.get(index) == new.plcs.get(index)
                && old_plans.get(index) == new_plans.get(index)
        })
        .collect()
}

impl crate::config::MachineConfig {
    /// The id of the PLC the machine is polled over.
    fn plc_id<'a>(&self, config: &'a Config) -> &'a str {
        &config.plcs[self.plc].id
    }
}

/// Machines are equal apart from their PLC index, which moves when PLCs before theirs are removed.
fn same_machine(
    before: &crate::config::MachineConfig,
    after: &crate::config::MachineConfig,
) -> bool {
    let mut moved = before.clone();
    moved.plc = after.plc;
    moved == *after
}

/// `[agent]` and `[store]` settings a reload applies (everything but the restart keys).
fn same_agent_settings(old: &Config, new: &Config) -> bool {
    let (a, b) = (&old.agent, &new.agent);
    let periods = |c: &Config| {
        c.agent
            .periods
            .iter()
            .map(|p| (p.period.clone(), p.grace))
            .collect::<Vec<_>>()
    };
    a.timezone_name == b.timezone_name
        && periods(old) == periods(new)
        && a.live_interval == b.live_interval
        && a.health_interval == b.health_interval
        && a.restatement_horizon == b.restatement_horizon
        && a.unknown_time == b.unknown_time
        && old.store.audit_retention == new.store.audit_retention
        && old.store.commit_interval == new.store.commit_interval
}

fn plan_of(config: &Config, plc: usize) -> ReadPlan {
    ReadPlan::for_plc(config, plc)
}

/// Ids only in `new` (added), only in `old` (removed), and in both but not `same` (changed), in file order.
fn diff_by_id(
    old: &[&String],
    new: &[&String],
    same: impl Fn(usize, usize) -> bool,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for (new_index, id) in new.iter().enumerate() {
        match old.iter().position(|other| other == id) {
            None => added.push((*id).clone()),
            Some(old_index) if !same(old_index, new_index) => changed.push((*id).clone()),
            Some(_) => {}
        }
    }
    let removed = old
        .iter()
        .filter(|id| !new.contains(id))
        .map(|id| (*id).clone())
        .collect();
    (added, removed, changed)
}

#[cfg(test)]
mod tests;
