//! A reloaded configuration applied to the running agent (README, "Reload"). An invalid file, or one that
//! changes a key only a restart can apply, is logged and the running configuration stays. Otherwise the
//! pollers of removed and changed PLCs stop (their samples reach the processor first), the processor takes
//! the new configuration between two cycles, and the pollers of added and changed PLCs start. Pollers of
//! unchanged PLCs keep polling throughout.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::oneshot;
use tracing::{error, info};

use super::changes::{kept_pollers, ConfigChanges};
use super::{read_plans, Running};
use crate::config::{Config, ConfigError};
use crate::poller::{self, ReadPlan};
use crate::processor::Reconfigure;

impl Running {
    /// Applies `loaded` if it is valid and can be applied live; logs why not otherwise. Errors only when a
    /// task failed meanwhile, which ends the agent as any task failure does.
    pub(super) async fn reload(
        &mut self,
        loaded: Result<Config, ConfigError>,
    ) -> anyhow::Result<()> {
        let new = match loaded {
            Ok(config) => Arc::new(config),
            Err(problem) => {
                refused(&problem);
                return Ok(());
            }
        };
        let changes = ConfigChanges::between(&self.config, &new);
        if !changes.restart_needed.is_empty() {
            error!(
                keys = ?changes.restart_needed,
                "Reload refused: these keys can only change with a restart; the running configuration stays."
            );
            return Ok(());
        }
        if changes.is_empty() {
            info!(config_hash = %new.config_hash, "Reload: the configuration is unchanged.");
            return Ok(());
        }
        let new_plans = read_plans(&new);
        let kept = kept_pollers(&self.config, &self.plans, &new, &new_plans);
        let stopped: Vec<usize> = (0..self.config.plcs.len())
            .filter(|index| !kept.get(*index).copied().unwrap_or(false))
            .collect();
        self.pollers.stop(&stopped).await?;
        if let Err(error) = self.reconfigure_processor(&new, &new_plans).await? {
            error!(
                error = format!("{error:#}"),
                "Reload not applied: the processor could not take the new configuration; the running one stays."
            );
            // The stopped pollers resume on the configuration the processor still runs on.
            for index in stopped {
                self.pollers.start(index, &self.config, &self.plans[index]);
            }
            return Ok(());
        }
        self.rebuild_health(&new, &kept);
        self.pollers.lay_out(&new);
        for (index, plan) in new_plans.iter().enumerate() {
            if !kept[index] {
                self.pollers.start(index, &new, plan);
            }
        }
        info!(
            config_hash = %new.config_hash,
            plcs = new.plcs.len(),
            machines = new.machines.len(),
            changes = %changes,
            "Configuration reloaded."
        );
        self.config = new;
        self.plans = new_plans;
        Ok(())
    }

    /// Hands the processor the new configuration and waits for its answer. The outer error means the
    /// processor is gone; the inner one that it still runs on the old configuration.
    async fn reconfigure_processor(
        &self,
        config: &Arc<Config>,
        plans: &[ReadPlan],
    ) -> anyhow::Result<anyhow::Result<()>> {
        let (applied, answer) = oneshot::channel();
        self.reconfigure_tx
            .send(Reconfigure {
                config: config.clone(),
                plans: plans.to_vec(),
                applied,
            })
            .await
            .ok()
            .context("the processor stopped before a reload")?;
        answer
            .await
            .context("the processor stopped during a reload")
    }

    /// The health board laid out for `new`: kept pollers keep their figures, the others start afresh.
    fn rebuild_health(&self, new: &Config, kept: &[bool]) {
        let fresh = poller::health_board(new);
        let mut entries = std::mem::take(&mut *fresh.lock().expect("a new lock is never poisoned"));
        let mut board = self
            .plc_health
            .lock()
            .expect("health board lock is never poisoned");
        for (index, entry) in entries.iter_mut().enumerate() {
            if kept[index] {
                if let Some(running) = board.get(index) {
                    *entry = running.clone();
                }
            }
        }
        *board = entries;
    }
}

/// Logs why a reloaded file cannot be used: every problem with its TOML path, as `validate` prints them.
fn refused(problem: &ConfigError) {
    match problem {
        ConfigError::Invalid { file, problems } => {
            for each in problems {
                error!(file = %file, problem = %each, "Reloaded configuration is invalid.");
            }
            error!(
                file = %file,
                problems = problems.len(),
                "Reload refused; the running configuration stays."
            );
        }
        other => error!(error = %other, "Reload refused; the running configuration stays."),
    }
}
