//! Log output on stderr, where journald (or a terminal) reads it: the filter from `SHOPFLOOR_LOG`, the format from
//! `agent.log_format`, and colour escape codes only when stderr is a terminal, so a journal or a log file never
//! holds them. Which events are logged, and how often, is each module's business.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The environment variable holding the log filter (tracing's `EnvFilter` syntax, e.g. `info,shopfloor_agent=debug`).
pub const FILTER_VARIABLE: &str = "SHOPFLOOR_LOG";

/// Installs the process-wide subscriber writing to stderr in `format`; `default_filter` applies when
/// [`FILTER_VARIABLE`] is unset or invalid. A second call does nothing (the first subscriber stays).
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_env(FILTER_VARIABLE).unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_wanted(format, std::io::stderr().is_terminal()));
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // Only a subscriber installed earlier makes this fail; that one keeps logging.
    drop(installed);
}

/// Colour codes belong in a terminal only, and never in JSON.
fn colour_wanted(format: LogFormat, stderr_is_terminal: bool) -> bool {
    format == LogFormat::Text && stderr_is_terminal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_for_text_on_a_terminal() {
        assert!(colour_wanted(LogFormat::Text, true));
        assert!(!colour_wanted(LogFormat::Text, false));
        assert!(!colour_wanted(LogFormat::Json, true));
        assert!(!colour_wanted(LogFormat::Json, false));
    }
}
