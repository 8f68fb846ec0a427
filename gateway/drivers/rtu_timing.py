"""A Modbus RTU line's own timing (pure), from the Modbus over Serial Line specification V1.02, 2.5.1.1.

An RTU frame is told from the next by silence: at least 3.5 character times between frames (t3.5). A character
is 11 bits on the wire (start, 8 data, parity, stop; or start, 8 data, 2 stops without parity) whatever the
settings a device offers; above 19,200 baud the specification fixes t3.5 at 1.75 ms, since a UART's interrupt
latency would otherwise decide it. A master sends its next request only after that silence.

These figures give a line's budget: the time one poll of a unit takes on the wire, so that the units sharing a
line can be polled in turn within their poll interval (docs/gateway.md, 'Modbus RTU on RS-485').
"""

from __future__ import annotations

from dataclasses import dataclass

# Above this baud rate t3.5 is a fixed 1.75 ms (the specification's recommendation).
FIXED_GAP_ABOVE_BAUD = 19_200
FIXED_GAP_S = 0.00175
# A request to read: unit, function, address (2), count (2), CRC (2).
READ_REQUEST_BYTES = 8
# A response: unit, function, byte count, the data, CRC (2).
RESPONSE_OVERHEAD_BYTES = 5


@dataclass(frozen=True, slots=True)
class LineTiming:
    baudrate: int
    parity: bool
    stop_bits: int

    @property
    def bits_per_char(self) -> int:
        return 1 + 8 + int(self.parity) + self.stop_bits

    @property
    def char_s(self) -> float:
        return self.bits_per_char / self.baudrate

    @property
    def gap_s(self) -> float:
        """t3.5: the silence that ends a frame, and that the master keeps before its next request."""
        return FIXED_GAP_S if self.baudrate > FIXED_GAP_ABOVE_BAUD else 3.5 * self.char_s

    def read_s(self, data_bytes: int) -> float:
        """One read on the wire, request to the end of its response: both frames, the silence after each (the
        slave's own turnaround is not counted: a device's manual gives it)."""
        chars = READ_REQUEST_BYTES + RESPONSE_OVERHEAD_BYTES + data_bytes
        return chars * self.char_s + 2 * self.gap_s


def response_bytes(count: int, *, bits: bool) -> int:
    """The data bytes of a read response for ``count`` registers (2 bytes each) or bits (8 a byte)."""
    return (count + 7) // 8 if bits else 2 * count
