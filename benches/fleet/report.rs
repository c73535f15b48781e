//! The printed result of a scenario: one table per scenario, each figure for the floor and the agent side by
//! side with their ratio and the budget it is judged by.

/// One figure of a scenario.
#[derive(Debug, Clone)]
pub struct Row {
    figure: String,
    unit: &'static str,
    floor: Option<f64>,
    agent: Option<f64>,
    budget: String,
}

/// A scenario's table: its title, its parameters as measured, and its figures.
#[derive(Debug, Clone)]
pub struct Table {
    title: String,
    parameters: String,
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Table {
    /// An empty table, e.g. `Table::new("S0 medium", "10 PLCs x 32 registers every 200 ms for 60 s")`.
    pub fn new(title: impl Into<String>, parameters: impl Into<String>) -> Table {
        Table {
            title: title.into(),
            parameters: parameters.into(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a figure; `floor` is `None` where the floor has no such figure. `budget` is the bar for
    /// the agent (e.g. "<= 0.06"), or "" when there is none.
    pub fn row(
        &mut self,
        figure: impl Into<String>,
        unit: &'static str,
        floor: Option<f64>,
        agent: Option<f64>,
        budget: impl Into<String>,
    ) -> &mut Table {
        self.rows.push(Row {
            figure: figure.into(),
            unit,
            floor,
            agent,
            budget: budget.into(),
        });
        self
    }

    /// Adds a line printed under the table (how a figure was taken, what limited it).
    pub fn note(&mut self, note: impl Into<String>) -> &mut Table {
        self.notes.push(note.into());
        self
    }

    /// The table as text, Markdown-compatible so README can quote it as printed.
    pub fn render(&self) -> String {
        let mut out = format!("\n### {}\n{}\n\n", self.title, self.parameters);
        out.push_str("| figure | unit | floor | agent | agent/floor | budget |\n");
        out.push_str("|---|---|---:|---:|---:|---|\n");
        for row in &self.rows {
            let ratio = match (row.floor, row.agent) {
                (Some(floor), Some(agent)) if floor > 0.0 => format!("{:.2}", agent / floor),
                _ => "".to_string(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                row.figure,
                row.unit,
                number(row.floor),
                number(row.agent),
                ratio,
                row.budget
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("\n- {note}"));
        }
        out.push('\n');
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        println!("{}", self.render());
    }
}

/// A figure with about three significant digits; "-" when absent.
fn number(value: Option<f64>) -> String {
    match value {
        None => "-".to_string(),
        Some(0.0) => "0".to_string(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}
