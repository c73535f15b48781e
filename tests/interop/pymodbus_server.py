#!/usr/bin/env python3
"""A Modbus/TCP server built on pymodbus 3.x (a stack we did not write) for tests/interop.rs.

Unit 1 serves known values in every data type and byte order, encoded here with Python's struct module,
independently of the agent's decoder. Holding registers end at address 99: reads at 100 and above are
answered with exception 0x02 (illegal data address). Unit ids other than 1 are answered with exception
0x0B (gateway target device failed to respond). Every value below is repeated in tests/interop.rs.

    python3 -m pip install 'pymodbus>=3.6,<4'
    python3 tests/interop/pymodbus_server.py --port 15020
"""

import argparse
import asyncio
import logging
import struct

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import StartAsyncTcpServer

try:  # pymodbus >= 3.10 renamed slaves to devices.
    from pymodbus.datastore import ModbusDeviceContext as DeviceContext
except ImportError:  # pragma: no cover - older 3.x
    from pymodbus.datastore import ModbusSlaveContext as DeviceContext

HOLDING_REGISTERS = 100  # addresses 0..=99; 100 and above are illegal
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
FORMATS = {"u32": ">I", "i32": ">i", "f32": ">f", "u64": ">Q", "i64": ">q", "f64": ">d"}

# (first address, type, value): each multi-register value is written in all four orders, one after another.
VALUES = [
    ("u32", 3_000_000_123, 2),
    ("i32", -123_456_789, 10),
    ("f32", 123.456, 18),
    ("u64", 12_345_678_901_234_567_890, 26),
    ("i64", -1_234_567_890_123_456_789, 42),
    ("f64", -98_765.4321, 58),
]


def words(type_name, value, order):
    """The registers of `value` in `order`: CDAB reverses all words, BADC swaps the bytes of each word."""
    raw = struct.pack(FORMATS[type_name], value)
    out = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    if order in ("CDAB", "DCBA"):
        out.reverse()
    if order in ("BADC", "DCBA"):
        out = [((w & 0xFF) << 8) | (w >> 8) for w in out]
    return out


def holding_registers():
    regs = [0] * HOLDING_REGISTERS
    regs[0] = 54_321
    regs[1] = struct.unpack(">H", struct.pack(">h", -1_234))[0]
    for type_name, value, first in VALUES:
        width = len(words(type_name, value, "ABCD"))
        for index, order in enumerate(ORDERS):
            at = first + index * width
            regs[at : at + width] = words(type_name, value, order)
    regs[74] = 0b0000_0000_0010_0000  # bit 5 set, bit 4 clear
    regs[99] = 4_242  # the last legal address
    return regs


def build_context():
    # Blocks start at 1: pymodbus maps request address 0 to block address 1.
    device = DeviceContext(
        hr=ModbusSequentialDataBlock(1, holding_registers()),
        ir=ModbusSequentialDataBlock(1, [777] + words("f32", -0.5, "ABCD") + [0] * 7),
        co=ModbusSequentialDataBlock(1, [True, False, True, True, False, False, True, False]),
        di=ModbusSequentialDataBlock(1, [False, True, True, False]),
    )
    try:
        return ModbusServerContext(devices={1: device}, single=False)
    except TypeError:  # pragma: no cover - older 3.x
        return ModbusServerContext(slaves={1: device}, single=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(StartAsyncTcpServer(context=build_context(), address=("127.0.0.1", args.port)))


if __name__ == "__main__":
    main()
