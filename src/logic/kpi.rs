//! Window sums → KPIs (ISO 22400-2 names, PQCD practice), with nulls that carry reasons.

use serde::{Deserialize, Serialize};

/// Baseline and target of one KPI.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The pre-programme value.
    pub baseline: f64,
    /// The goal.
    pub target: f64,
}

/// Configured targets of one machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Good units per planned hour.
    pub productivity: Option<Target>,
    /// Defective / produced.
    pub defect_rate: Option<Target>,
}
