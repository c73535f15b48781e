//! Pure core: decoding, counter deltas, windows, rollups, KPIs and payloads.
//! Nothing here performs I/O or reads a clock; time is always an argument (`Millis`).

pub mod calendar;
pub mod clock;
pub mod counter;
pub mod decode;
pub mod kpi;
pub mod payload;
pub mod rollup;
pub mod targets;
pub mod window;

/// UTC milliseconds since the Unix epoch; the only time type the pure core knows.
pub type Millis = i64;
