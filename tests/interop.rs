//! Interoperability with a Modbus stack we did not write: the real poller task polls a pymodbus 3.x server
//! (`tests/interop/pymodbus_server.py`) serving known values in every data type and byte order, and every
//! decoded value must match. The values are encoded there with Python's `struct`, independently of our decoder.
//!
//! Commands: `python3 -m pip install 'pymodbus>=3.6,<4'`, then `cargo test --test integration interop`.
//! Without pymodbus the test is skipped with a note, except under `CI=true`, where it fails.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shopfloor_agent::config::TagAddress;
use shopfloor_agent::logic::decode::{DataType, Table, Value, WordOrder};
use shopfloor_agent::poller::{classify, ExceptionClass, TagError};

use crate::modbus::{ordered, plc_config, tag, Poll, PATIENCE};
use crate::support::{free_port, wait_until};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/pymodbus_server.py"
);

/// The four byte orders as (word order, byte swap), in the script's order: ABCD, CDAB, BADC, DCBA.
const ORDERS: [(WordOrder, bool); 4] = [
    (WordOrder::Big, false),
    (WordOrder::Little, false),
    (WordOrder::Big, true),
    (WordOrder::Little, true),
];

/// The multi-register values of the script: type, value, first address (four orders follow each other).
fn multi_register_values() -> Vec<(DataType, Value, u16)> {
    vec![
        (DataType::U32, Value::UInt(3_000_000_123), 2),
        (DataType::I32, Value::Int(-123_456_789), 10),
        (DataType::F32, Value::Float(f64::from(123.456f32)), 18),
        (DataType::U64, Value::UInt(12_345_678_901_234_567_890), 26),
        (DataType::I64, Value::Int(-1_234_567_890_123_456_789), 42),
        (DataType::F64, Value::Float(-98_765.432_1), 58),
    ]
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pymodbus_available() -> bool {
    Command::new("python3")
        .args(["-c", "import pymodbus"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn bit_of(address: u16, bit: u8) -> TagAddress {
    TagAddress {
        bit: Some(bit),
        ..tag(1, Table::Holding, address, DataType::Bool)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_pymodbus_server_when_polled_then_every_type_and_order_decodes_to_the_served_value()
{
    if !pymodbus_available() {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("pymodbus is not importable under CI=true: .ci/run must install it (pip install 'pymodbus>=3.6,<4')");
        }
        eprintln!("SKIPPED interop test: pymodbus is not installed (python3 -m pip install 'pymodbus>=3.6,<4')");
        return;
    }
    // Given the pymodbus server on a free port.
    let port = free_port();
    let _server = Server(
        Command::new("python3")
            .args([SCRIPT, "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts"),
    );
    let address = format!("127.0.0.1:{port}");
    wait_until(PATIENCE, "the pymodbus server listens", || {
        std::net::TcpStream::connect(&address).is_ok()
    })
    .await;

    // And a plan with every type in every order, bits of a register, coils, discrete and input registers,
    // an address past the server's last register, and a unit the server does not have.
    let expected = served_tags();
    let illegal = tag(1, Table::Holding, 100, DataType::U16);
    let absent_unit = tag(2, Table::Holding, 0, DataType::U16);
    let mut tags: Vec<TagAddress> = expected.iter().map(|(tag, _)| *tag).collect();
    tags.extend([illegal, absent_unit]);

    // When the poller runs until every tag has been read three times.
    let poll = Poll::start(
        plc_config(&address, |plc| plc.timeout = Duration::from_secs(1)),
        tags,
    );
    wait_until(PATIENCE, "every served tag read three times", || {
        (0..expected.len()).all(|index| poll.reads(index) >= 3)
    })
    .await;
    poll.stop().await;

    // Then every value decodes to what pymodbus served, …
    for (index, (tag, value)) in expected.iter().enumerate() {
        let values = poll.values(index);
        assert!(
            values.iter().all(|v| v == value),
            "{:?} {:?} at {}: {values:?} != {value:?}",
            tag.encoding.data_type,
            (tag.encoding.word_order, tag.encoding.byte_swap),
            tag.address
        );
    }
    // … the address past the end is refused with 02 (a configuration error: disabled, reported once), …
    let illegal_index = poll.plan.index_of(&illegal).unwrap();
    assert!(poll
        .readings(illegal_index)
        .iter()
        .all(|r| matches!(r, Err(TagError::Disabled { code: 0x02, .. }))));
    assert_eq!(poll.health().disabled_tags.len(), 1);
    // … and the absent unit gets a transient exception (0x0B, or 0x04 from newer pymodbus), never a value.
    let absent_index = poll.plan.index_of(&absent_unit).unwrap();
    let absent = poll.readings(absent_index);
    assert!(
        absent.iter().all(|r| matches!(
            r,
            Err(TagError::Exception { code, .. }) if classify(*code) == ExceptionClass::Transient
        ) || matches!(r, Err(TagError::UnitSkipped { unit_id: 2 }))),
        "{absent:?}"
    );
    let health = poll.health();
    eprintln!(
        "pymodbus interop: {} tags in {} requests/poll, request RTT p50 {:?} ms p99 {:?} ms",
        poll.plan.tags.len(),
        health.requests_per_poll,
        health.rtt_p50_ms(),
        health.rtt_p99_ms()
    );
}

/// Every tag the pymodbus script serves, with its value: every type in every order, bits of a register,
/// coils, discrete and input registers.
fn served_tags() -> Vec<(TagAddress, Value)> {
    let mut expected: Vec<(TagAddress, Value)> = vec![
        (
            tag(1, Table::Holding, 0, DataType::U16),
            Value::UInt(54_321),
        ),
        (tag(1, Table::Holding, 1, DataType::I16), Value::Int(-1_234)),
        (bit_of(74, 5), Value::Bool(true)),
        (bit_of(74, 4), Value::Bool(false)),
        (
            tag(1, Table::Holding, 99, DataType::U16),
            Value::UInt(4_242),
        ),
        (tag(1, Table::Input, 0, DataType::U16), Value::UInt(777)),
        (tag(1, Table::Input, 1, DataType::F32), Value::Float(-0.5)),
    ];
    for (data_type, value, first) in multi_register_values() {
        let width = data_type.register_count();
        for (index, (word_order, byte_swap)) in ORDERS.into_iter().enumerate() {
            let address = first + index as u16 * width;
            expected.push((
                ordered(1, Table::Holding, address, data_type, word_order, byte_swap),
                value,
            ));
        }
    }
    for (address, bit) in [true, false, true, true, false, false, true, false]
        .into_iter()
        .enumerate()
    {
        expected.push((
            tag(1, Table::Coil, address as u16, DataType::Bool),
            Value::Bool(bit),
        ));
    }
    for (address, bit) in [false, true, true, false].into_iter().enumerate() {
        expected.push((
            tag(1, Table::Discrete, address as u16, DataType::Bool),
            Value::Bool(bit),
        ));
    }
    expected
}
