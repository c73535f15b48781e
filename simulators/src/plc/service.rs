//! The Modbus side of the simulator: answers one request for one unit from the plant's register images.
//! Read-only by design: every write function is refused. Fault modes added later (silence, late answers,
//! exceptions on cue) belong in `PlcService::call`; this module deliberately knows nothing about sockets.

use std::future::{ready, Ready};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_modbus::server::Service;

use super::Plant;
use crate::model::{MachineModel, BIT_COUNT, REGISTER_COUNT};

/// Most registers one read may ask for (Modbus application protocol, FC 3 and 4).
const MAX_READ_REGISTERS: u16 = 125;
/// Most bits one read may ask for (FC 1 and 2).
const MAX_READ_BITS: u16 = 2000;

/// One connection's view of the plant; cheap to clone, shares the plant's mutex.
#[derive(Clone)]
pub(super) struct PlcService {
    plant: Arc<Mutex<Plant>>,
}

impl PlcService {
    /// A service answering from `plant`.
    pub(super) fn new(plant: Arc<Mutex<Plant>>) -> Self {
        Self { plant }
    }
}

impl Service for PlcService {
    type Request = SlaveRequest<'static>;
    // `Option` so a later fault mode can stay silent (no response at all).
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Self::Response, Self::Exception>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        let plant = self
            .plant
            .lock()
            .expect("plant mutex poisoned: a simulator thread panicked");
        ready(answer(&plant, request.slave, &request.request).map(Some))
    }
}

/// The response (or exception) a real PLC with this plant would give.
fn answer(plant: &Plant, unit_id: u8, request: &Request<'_>) -> Result<Response, ExceptionCode> {
    // A unit id nobody answers to is what a Modbus gateway reports as "target device failed to respond".
    let model = plant
        .model(unit_id)
        .ok_or(ExceptionCode::GatewayTargetDevice)?;
    match *request {
        Request::ReadHoldingRegisters(address, quantity) => {
            read_registers(model, address, quantity).map(Response::ReadHoldingRegisters)
        }
        Request::ReadInputRegisters(address, quantity) => {
            read_registers(model, address, quantity).map(Response::ReadInputRegisters)
        }
        Request::ReadCoils(address, quantity) => {
            read_bits(model, address, quantity).map(Response::ReadCoils)
        }
        Request::ReadDiscreteInputs(address, quantity) => {
            read_bits(model, address, quantity).map(Response::ReadDiscreteInputs)
        }
        _ => Err(ExceptionCode::IllegalFunction),
    }
}

fn read_registers(
    model: &MachineModel,
    address: u16,
    quantity: u16,
) -> Result<Vec<u16>, ExceptionCode> {
    let range = mapped_range(
        model.spec().base_address,
        REGISTER_COUNT,
        address,
        quantity,
        MAX_READ_REGISTERS,
    )?;
    Ok(model.register_image()[range].to_vec())
}

fn read_bits(
    model: &MachineModel,
    address: u16,
    quantity: u16,
) -> Result<Vec<bool>, ExceptionCode> {
    let range = mapped_range(
        model.spec().base_address,
        BIT_COUNT,
        address,
        quantity,
        MAX_READ_BITS,
    )?;
    Ok(model.bit_image()[range].to_vec())
}

/// Indexes into a machine's image for a read of `quantity` items at `address`, checked like a strict PLC:
/// the quantity first (IllegalDataValue), then the whole span inside the mapped block (IllegalDataAddress).
fn mapped_range(
    base_address: u16,
    mapped: u16,
    address: u16,
    quantity: u16,
    max_quantity: u16,
) -> Result<Range<usize>, ExceptionCode> {
    if quantity == 0 || quantity > max_quantity {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let start = u32::from(address);
    let end = start + u32::from(quantity);
    let block_start = u32::from(base_address);
    let block_end = block_start + u32::from(mapped);
    if start < block_start || end > block_end {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    let offset = |at: u32| usize::try_from(at - block_start).expect("a u16 span fits in usize");
    Ok(offset(start)..offset(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_block_at_100_when_reading_inside_then_offsets_are_relative() {
        assert_eq!(mapped_range(100, 21, 100, 21, 125), Ok(0..21));
        assert_eq!(mapped_range(100, 21, 120, 1, 125), Ok(20..21));
    }

    #[test]
    fn given_block_at_100_when_reading_across_an_edge_then_illegal_data_address() {
        assert_eq!(
            mapped_range(100, 21, 99, 2, 125),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            mapped_range(100, 21, 120, 2, 125),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            mapped_range(65_515, 21, 65_535, 125, 125),
            Err(ExceptionCode::IllegalDataAddress)
        );
    }

    #[test]
    fn given_bad_quantity_when_reading_then_illegal_data_value() {
        assert_eq!(
            mapped_range(0, 21, 0, 0, 125),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            mapped_range(0, 21, 0, 126, 125),
            Err(ExceptionCode::IllegalDataValue)
        );
    }
}
