//! The Modbus side of the simulator: answers one request for one unit from the plant's register images.
//! Read-only by design: every write function is refused (and counted). Armed fault rules are applied here per
//! request (silence, late answers, exceptions, wrong counts); half frames are cued to the connection's transport.
//! This module deliberately knows nothing about sockets.

use std::future::{ready, Future};
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_modbus::server::Service;

use super::fault::Fault;
use super::transport::{AfterHalf, ConnectionCue};
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
    cue: Arc<ConnectionCue>,
}

impl PlcService {
    /// A service answering from `plant` on the connection `cue` belongs to.
    pub(super) fn new(plant: Arc<Mutex<Plant>>, cue: Arc<ConnectionCue>) -> Self {
        Self { plant, cue }
    }
}

type Answer = Result<Option<Response>, ExceptionCode>;

impl Service for PlcService {
    type Request = SlaveRequest<'static>;
    // `None` is a request left unanswered (the silent fault).
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        let (fault, answer) = {
            let mut plant = self
                .plant
                .lock()
                .expect("plant mutex poisoned: a simulator thread panicked");
            let function = request.request.function_code().value();
            let fault = plant.faults.on_request(
                self.cue.id,
                request.slave,
                function,
                span(&request.request),
            );
            (fault, answer(&plant, request.slave, &request.request))
        };
        match fault {
            None => Box::pin(ready(answer.map(Some))),
            Some(Fault::Silent) => Box::pin(ready(Ok(None))),
            Some(Fault::Exception(code)) => Box::pin(ready(Err(ExceptionCode::new(code)))),
            Some(Fault::Delay(delay)) => Box::pin(async move {
                tokio::time::sleep(delay).await;
                answer.map(Some)
            }),
            Some(Fault::WrongCount(delta)) => Box::pin(ready(
                answer.map(|response| Some(miscount(response, delta))),
            )),
            Some(Fault::HalfFrameThenStall) => {
                self.cue.arm(AfterHalf::Stall);
                Box::pin(ready(answer.map(Some)))
            }
            Some(Fault::HalfFrameThenReset) => {
                self.cue.arm(AfterHalf::Reset);
                Box::pin(ready(answer.map(Some)))
            }
        }
    }
}

/// Address and quantity of a read request; `None` for every other function.
fn span(request: &Request<'_>) -> Option<(u16, u16)> {
    match *request {
        Request::ReadCoils(address, quantity)
        | Request::ReadDiscreteInputs(address, quantity)
        | Request::ReadHoldingRegisters(address, quantity)
        | Request::ReadInputRegisters(address, quantity) => Some((address, quantity)),
        _ => None,
    }
}

/// The same answer with `delta` registers or bits more (zeros) or fewer.
fn miscount(response: Response, delta: i32) -> Response {
    fn resize<T: Clone + Default>(mut items: Vec<T>, delta: i32) -> Vec<T> {
        let wanted = (items.len() as i64 + i64::from(delta)).max(0) as usize;
        items.resize(wanted, T::default());
        items
    }
    match response {
        Response::ReadHoldingRegisters(words) => {
            Response::ReadHoldingRegisters(resize(words, delta))
        }
        Response::ReadInputRegisters(words) => Response::ReadInputRegisters(resize(words, delta)),
        Response::ReadCoils(bits) => Response::ReadCoils(resize(bits, delta)),
        Response::ReadDiscreteInputs(bits) => Response::ReadDiscreteInputs(resize(bits, delta)),
        other => other,
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
