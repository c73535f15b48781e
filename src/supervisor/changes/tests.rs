//! What a reload would apply: PLCs and machines added, removed and changed; restart-only keys; which
//! pollers keep running.

use super::*;

const BASE: &str = r#"
[agent]
site = "acme"
gateway = "gw-01"
timezone = "UTC"
data_dir = "/tmp/unused"
periods = ["1m"]

[mqtt]
client_id = "gw-01"

[[plc]]
id = "plc-a"
address = "127.0.0.1:502"
poll_interval = "1s"

[[plc]]
id = "plc-b"
address = "127.0.0.1:503"
poll_interval = "1s"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
counters.produced = { address = 0, type = "u16" }
targets.productivity = { baseline = 100.0, target = 120.0 }

[[machine]]
id = "press-02"
line = "line-a"
plc = "plc-b"
counters.produced = { address = 0, type = "u16" }
"#;

fn config(text: &str) -> Config {
    Config::from_toml(text, "test.toml", false).unwrap()
}

fn plans(config: &Config) -> Vec<ReadPlan> {
    (0..config.plcs.len())
        .map(|plc| ReadPlan::for_plc(config, plc))
        .collect()
}

fn kept(old: &Config, new: &Config) -> Vec<bool> {
    kept_pollers(old, &plans(old), new, &plans(new))
}

#[test]
fn the_same_file_changes_nothing_and_keeps_every_poller() {
    let (old, new) = (config(BASE), config(BASE));
    let changes = ConfigChanges::between(&old, &new);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(kept(&old, &new), vec![true, true]);
}

#[test]
fn a_comment_changes_only_the_hash() {
    let (old, new) = (config(BASE), config(&format!("{BASE}\n# a note\n")));
    let changes = ConfigChanges::between(&old, &new);
    assert!(changes.hash_changed);
    assert_eq!(
        changes,
        ConfigChanges {
            hash_changed: true,
            ..ConfigChanges::default()
        }
    );
}

#[test]
fn a_new_target_changes_the_machine_but_no_poller() {
    let new_text = BASE.replace("target = 120.0", "target = 150.0");
    let (old, new) = (config(BASE), config(&new_text));
    let changes = ConfigChanges::between(&old, &new);
    assert_eq!(changes.machines_changed, vec!["press-01".to_string()]);
    assert!(changes.plcs_changed.is_empty() && changes.restart_needed.is_empty());
    assert_eq!(kept(&old, &new), vec![true, true]);
}

#[test]
fn a_machine_added_on_a_running_plc_restarts_only_that_plcs_poller() {
    let new_text = format!(
        "{BASE}\n[[machine]]\nid = \"press-03\"\nline = \"line-a\"\nplc = \"plc-a\"\nunit_id = 2\n\
         counters.produced = {{ address = 0, type = \"u16\" }}\n"
    );
    let (old, new) = (config(BASE), config(&new_text));
    let changes = ConfigChanges::between(&old, &new);
    assert_eq!(changes.machines_added, vec!["press-03".to_string()]);
    assert_eq!(changes.plcs_changed, vec!["plc-a".to_string()]);
    assert_eq!(kept(&old, &new), vec![false, true]);
}

#[test]
fn a_removed_plc_restarts_the_pollers_whose_index_moved() {
    // plc-a and its machine go; plc-b moves from index 1 to 0.
    let start = BASE.find("[[plc]]").unwrap();
    let second = BASE[start + 1..].find("[[plc]]").unwrap() + start + 1;
    let machine_b = BASE.find("[[machine]]\nid = \"press-02\"").unwrap();
    let first_machine = BASE.find("[[machine]]").unwrap();
    let new_text = format!(
        "{}{}{}",
        &BASE[..start],
        &BASE[second..first_machine],
        &BASE[machine_b..]
    );
    let (old, new) = (config(BASE), config(&new_text));
    let changes = ConfigChanges::between(&old, &new);
    assert_eq!(changes.plcs_removed, vec!["plc-a".to_string()]);
    assert_eq!(changes.machines_removed, vec!["press-01".to_string()]);
    // press-02 is the same machine although its PLC index moved.
    assert!(changes.machines_changed.is_empty(), "{changes:?}");
    assert!(changes.plcs_changed.is_empty());
    assert_eq!(kept(&old, &new), vec![false]);
}

#[test]
fn a_changed_register_changes_the_machine_and_its_plc() {
    let new_text = BASE.replacen(
        "counters.produced = { address = 0, type = \"u16\" }\ntargets",
        "counters.produced = { address = 4, type = \"u16\" }\ntargets",
        1,
    );
    let (old, new) = (config(BASE), config(&new_text));
    let changes = ConfigChanges::between(&old, &new);
    assert_eq!(changes.machines_changed, vec!["press-01".to_string()]);
    assert_eq!(changes.plcs_changed, vec!["plc-a".to_string()]);
    assert_eq!(kept(&old, &new), vec![false, true]);
}

#[test]
fn identity_and_uplink_keys_need_a_restart() {
    let new_text = BASE
        .replace("site = \"acme\"", "site = \"other\"")
        .replace("client_id = \"gw-01\"", "client_id = \"gw-02\"");
    let changes = ConfigChanges::between(&config(BASE), &config(&new_text));
    assert_eq!(changes.restart_needed, vec!["agent.site", "mqtt.client_id"]);
}

#[test]
fn a_new_calendar_restarts_every_poller() {
    let new_text = format!(
        "{BASE}\n[calendar]\nshifts = [{{ name = \"early\", start = \"06:00\", duration = \"8h\" }}]\n"
    );
    let (old, new) = (config(BASE), config(&new_text));
    let changes = ConfigChanges::between(&old, &new);
    assert!(changes.calendar_changed);
    assert_eq!(kept(&old, &new), vec![false, false]);
    assert!(changes.to_string().ends_with("; calendar"), "{changes}");
}

#[test]
fn a_new_commit_interval_is_applied_by_a_reload_without_restarting_a_poller() {
    let new_text = format!("{BASE}\n[store]\ncommit_interval = \"5s\"\n");
    let (old, new) = (config(BASE), config(&new_text));
    let changes = ConfigChanges::between(&old, &new);
    assert_eq!(
        changes,
        ConfigChanges {
            agent_changed: true,
            hash_changed: true,
            ..ConfigChanges::default()
        }
    );
    assert_eq!(kept(&old, &new), vec![true, true]);
}
