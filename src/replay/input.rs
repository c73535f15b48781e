//! The replay's input: a header `utc,machine,produced,defective,state` followed by one column per
//! configured defect reason, then one machine's poll record per line. Plain comma-separated cells
//! without quoting; a cell is trimmed, and an empty cell is a failed read of that value. Parsing only:
//! every problem is an [`InputError`] naming its line and column.

use crate::config::{Config, MachineConfig, TagAddress};
use crate::logic::Millis;

use super::encode::encode;

/// The columns every input starts with, in this order.
pub const FIXED_COLUMNS: [&str; 5] = ["utc", "machine", "produced", "defective", "state"];
const UTC: usize = 0;
const MACHINE: usize = 1;
const PRODUCED: usize = 2;
const DEFECTIVE: usize = 3;
const STATE: usize = 4;

/// Bad input: where (1-based line and column, the column's name) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column} ({name}): {message}")]
pub struct InputError {
    /// 1-based line; the header is line 1.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The column's name in the header (or the name that was expected there).
    pub name: String,
    /// What is wrong.
    pub message: String,
}

/// One tag of a record and its register words; `None` is a failed read (an empty cell).
pub type TagRead = (TagAddress, Option<Vec<u16>>);

/// One machine's poll record, with its values as the register words the PLC would return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line it came from.
    pub line: usize,
    /// When the poll was taken.
    pub utc: Millis,
    /// Index of the machine in `config.machines`.
    pub machine: usize,
    /// Every tag of the machine with its words.
    pub reads: Vec<TagRead>,
}

/// Reads records line by line against the header and the configuration; checks that time never goes
/// backwards.
#[derive(Debug)]
pub struct Reader<'a> {
    config: &'a Config,
    columns: Vec<String>,
    /// The latest time read and its line.
    last: Option<(Millis, usize)>,
}

impl<'a> Reader<'a> {
    /// Checks the header (line 1): the fixed columns, then each defect reason configured on any machine
    /// exactly once, in any order.
    pub fn new(config: &'a Config, header: &str) -> Result<Reader<'a>, InputError> {
        let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
        let error = |column: usize, name: &str, message: String| InputError {
            line: 1,
            column: column + 1,
            name: name.to_string(),
            message,
        };
        for (index, expected) in FIXED_COLUMNS.iter().enumerate() {
            match columns.get(index) {
                Some(found) if found == expected => {}
                found => {
                    let message = format!(
                        "expected column {expected:?}, found {:?}; the header starts with {}",
                        found.map_or("", String::as_str),
                        FIXED_COLUMNS.join(",")
                    );
                    return Err(error(index, expected, message));
                }
            }
        }
        let reasons = configured_reasons(config);
        for (index, name) in columns.iter().enumerate().skip(FIXED_COLUMNS.len()) {
            if !reasons.contains(&name.as_str()) {
                let message =
                    format!("unknown column {name:?}: not a defect reason of any machine");
                return Err(error(index, name, message));
            }
            if columns[..index].contains(name) {
                return Err(error(index, name, format!("column {name:?} appears twice")));
            }
        }
        if let Some(missing) = reasons.iter().find(|r| !columns.iter().any(|c| c == *r)) {
            let message = format!("no column for the configured defect reason {missing:?}");
            return Err(error(columns.len(), missing, message));
        }
        Ok(Reader {
            config,
            columns,
            last: None,
        })
    }

    /// Parses line `line` (1-based) into a record.
    pub fn record(&mut self, line: usize, text: &str) -> Result<Record, InputError> {
        let cells: Vec<&str> = text.split(',').map(str::trim).collect();
        if cells.len() != self.columns.len() {
            let column = cells.len().min(self.columns.len());
            let message = format!(
                "{} cells where the header has {} columns",
                cells.len(),
                self.columns.len()
            );
            return Err(self.error(line, column, message));
        }
        let utc = self.time(line, cells[UTC])?;
        let machine = self
            .config
            .machines
            .iter()
            .position(|m| m.id == cells[MACHINE])
            .ok_or_else(|| {
                self.error(
                    line,
                    MACHINE,
                    format!("unknown machine {:?}", cells[MACHINE]),
                )
            })?;
        let reads = self.reads(line, &self.config.machines[machine], &cells)?;
        self.last = Some((utc, line));
        Ok(Record {
            line,
            utc,
            machine,
            reads,
        })
    }

    fn time(&self, line: usize, cell: &str) -> Result<Millis, InputError> {
        let utc = cell
            .parse::<jiff::Timestamp>()
            .map_err(|e| self.error(line, UTC, format!("{cell:?} is not an RFC 3339 time: {e}")))?
            .as_millisecond();
        match self.last {
            Some((last, last_line)) if utc < last => Err(self.error(
                line,
                UTC,
                format!("time goes backwards: {cell} is before the time on line {last_line}"),
            )),
            _ => Ok(utc),
        }
    }

    /// Every tag of `machine` with its words from its column; a value for a tag the machine does not
    /// have is an error.
    fn reads(
        &self,
        line: usize,
        machine: &MachineConfig,
        cells: &[&str],
    ) -> Result<Vec<TagRead>, InputError> {
        let mut tags: Vec<(usize, Option<TagAddress>)> = vec![
            (PRODUCED, Some(machine.produced.tag)),
            (DEFECTIVE, machine.defective.as_ref().map(|c| c.tag)),
            (STATE, machine.state.as_ref().map(|s| s.tag)),
        ];
        for (index, name) in self.columns.iter().enumerate().skip(FIXED_COLUMNS.len()) {
            let reason = machine.defect_reasons.iter().find(|(r, _)| r == name);
            tags.push((index, reason.map(|(_, counter)| counter.tag)));
        }
        let mut reads = Vec::new();
        for (column, tag) in tags {
            let cell = cells[column];
            match tag {
                Some(tag) if cell.is_empty() => reads.push((tag, None)),
                Some(tag) => {
                    let words = encode(cell, &tag).map_err(|e| self.error(line, column, e))?;
                    reads.push((tag, Some(words)));
                }
                None if cell.is_empty() => {}
                None => {
                    let message = format!(
                        "machine {:?} has no {} tag; leave the cell empty",
                        machine.id, self.columns[column]
                    );
                    return Err(self.error(line, column, message));
                }
            }
        }
        Ok(reads)
    }

    /// An error at 0-based `column` of `line`.
    fn error(&self, line: usize, column: usize, message: String) -> InputError {
        InputError {
            line,
            column: column + 1,
            name: self.columns.get(column).cloned().unwrap_or_default(),
            message,
        }
    }
}

/// Every defect reason configured on any machine, once each, in configuration order.
fn configured_reasons(config: &Config) -> Vec<&str> {
    let mut reasons: Vec<&str> = Vec::new();
    for (name, _) in config.machines.iter().flat_map(|m| &m.defect_reasons) {
        if !reasons.contains(&name.as_str()) {
            reasons.push(name);
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[agent]
site = "acme"
gateway = "gw-01"
data_dir = "/tmp/unused"

[[plc]]
id = "plc-a"
address = "127.0.0.1:502"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
counters.produced = { table = "holding", address = 0, type = "u16" }
defect_reasons = { scratch = { table = "holding", address = 1, type = "u16" }, dent = { table = "holding", address = 2, type = "u16" } }

[[machine]]
id = "press-02"
line = "line-a"
plc = "plc-a"
counters.produced = { table = "holding", address = 20, type = "u16" }
state = { table = "holding", address = 21, type = "u16", running = [1] }
"#;

    fn config() -> Config {
        Config::from_toml(CONFIG, "test.toml", false).unwrap()
    }

    fn header_error(header: &str) -> InputError {
        Reader::new(&config(), header).unwrap_err()
    }

    #[test]
    fn given_reason_columns_in_any_order_when_the_header_is_read_then_it_is_accepted() {
        let config = config();
        assert!(Reader::new(&config, "utc,machine,produced,defective,state,dent,scratch").is_ok());
    }

    #[test]
    fn given_a_wrong_header_when_read_then_the_column_is_named() {
        let error = header_error("time,machine,produced,defective,state,scratch,dent");
        assert_eq!(
            (error.line, error.column, error.name.as_str()),
            (1, 1, "utc")
        );
        let error = header_error("utc,machine,produced,defective,state,scratch,scratch,dent");
        assert_eq!(
            (error.column, error.message.as_str()),
            (7, "column \"scratch\" appears twice")
        );
        let error = header_error("utc,machine,produced,defective,state,scratch");
        assert_eq!((error.column, error.name.as_str()), (7, "dent"));
        assert!(error
            .message
            .contains("no column for the configured defect reason"));
        let error = header_error("");
        assert_eq!(error.column, 1);
    }

    #[test]
    fn given_a_record_when_read_then_every_tag_of_its_machine_has_its_words_or_a_failed_read() {
        let config = config();
        let mut reader =
            Reader::new(&config, "utc,machine,produced,defective,state,scratch,dent").unwrap();
        let record = reader
            .record(2, " 2026-11-27T07:00:00+01:00 ,press-01,7,,, 2,")
            .unwrap();
        assert_eq!(record.utc, 1_795_759_200_000); // 06:00Z
        assert_eq!(record.machine, 0);
        let words: Vec<Option<Vec<u16>>> = record.reads.into_iter().map(|(_, w)| w).collect();
        // produced, then the reasons in column order: scratch read, dent a failed read.
        assert_eq!(words, vec![Some(vec![7]), Some(vec![2]), None]);
    }

    #[test]
    fn given_bad_records_when_read_then_each_error_names_line_and_column() {
        let config = config();
        let mut reader =
            Reader::new(&config, "utc,machine,produced,defective,state,scratch,dent").unwrap();
        let cases = [
            (
                "2026-11-27T06:00:00Z,press-01,7,,,2",
                7,
                "6 cells where the header has 7 columns",
            ),
            (
                "2026-11-27T06:00:00Z,press-01,7,,,2,1,9",
                8,
                "8 cells where the header has 7 columns",
            ),
            (
                "2026-11-27T06:00:00Z,press-01,7,,1,2,1",
                5,
                "machine \"press-01\" has no state tag",
            ),
            (
                "2026-11-27T06:00:00Z,press-02,7,,1,2,",
                6,
                "machine \"press-02\" has no scratch tag",
            ),
            (
                "2026-11-27T06:00:00,press-01,7,,,2,1",
                1,
                "is not an RFC 3339 time",
            ),
        ];
        for (line, column, message) in cases {
            let error = reader.record(5, line).unwrap_err();
            assert_eq!((error.line, error.column), (5, column), "{line}: {error}");
            assert!(error.message.contains(message), "{line}: {error}");
        }
    }

    #[test]
    fn given_equal_times_when_read_then_accepted_and_an_earlier_one_is_refused() {
        let config = config();
        let mut reader =
            Reader::new(&config, "utc,machine,produced,defective,state,scratch,dent").unwrap();
        reader
            .record(2, "2026-11-27T06:00:00Z,press-01,7,,,2,1")
            .unwrap();
        reader
            .record(3, "2026-11-27T06:00:00Z,press-02,7,,1,,")
            .unwrap();
        let error = reader
            .record(4, "2026-11-27T05:59:59.999Z,press-01,8,,,2,1")
            .unwrap_err();
        assert_eq!((error.line, error.column), (4, 1));
        assert!(
            error.message.contains("before the time on line 3"),
            "{error}"
        );
    }
}
