//! The publishing side: the publishing floor role and scenarios S4–S6.

use crate::report::Table;
use crate::{Options, Scenario};

/// Runs the child role `role` if it is one of this module's.
pub fn run_role(role: &str, args: &[String]) -> Option<anyhow::Result<()>> {
    let _ = (role, args);
    None
}

/// Runs one of S4–S6 and returns its tables.
pub fn run(scenario: Scenario, options: &Options) -> anyhow::Result<Vec<Table>> {
    let _ = options;
    anyhow::bail!("{scenario:?} is not built yet")
}
