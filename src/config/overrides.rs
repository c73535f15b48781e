//! Environment overrides in problems: a problem whose value a `SHOPFLOOR__` variable set names it.

use super::{Problem, ENV_PREFIX};

/// Names the environment variable behind each problem whose value an override set: the variable
/// `SHOPFLOOR__MQTT__KEEP_ALIVE` sets `mqtt.keep_alive` and everything below it.
pub(super) fn blame_overrides(problems: &mut [Problem], overrides: &[(String, String)]) {
    let prefix = format!("{ENV_PREFIX}__");
    for (var, _) in overrides {
        let Some(key) = var.strip_prefix(&prefix) else {
            continue;
        };
        let path = key.to_lowercase().replace("__", ".");
        for problem in problems.iter_mut() {
            let below = problem
                .path
                .strip_prefix(&path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']));
            if below && problem.from_env.is_none() {
                problem.from_env = Some(var.clone());
            }
        }
    }
}
