"""The default Huffman table of SCP-ECG (section 2 table count 19999), both directions.

The table codes the value 0 as ``0``; the values ±1 … ±8 as *k* one-bits, a zero bit and a sign
bit (0 positive, 1 negative), e.g. ``100`` = +1, ``1101`` = −2; any other value as ``1111111110``
followed by its 8-bit two's complement, or ``1111111111`` followed by its 16-bit two's complement.
Bits are packed most significant bit first; the last byte of a lead is padded with zero bits.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from rekam.ecg.errors import ScpEcgError, ScpEcgUnsupportedError

__all__ = ["decode_default_huffman", "encode_default_huffman"]

_SHORT_MAX = 8
_ESCAPE_8 = "1111111110"
_ESCAPE_16 = "1111111111"


def _code(value: int) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude <= _SHORT_MAX:
        return "1" * magnitude + "0" + ("1" if value < 0 else "0")
    if -128 <= value <= 127:
        return _ESCAPE_8 + format(value & 0xFF, "08b")
    if -32768 <= value <= 32767:
        return _ESCAPE_16 + format(value & 0xFFFF, "016b")
    raise ScpEcgUnsupportedError(
        f"The value {value} does not fit the 16 bits of the default Huffman table; store the "
        "ECG without Huffman coding or with a coarser amplitude step."
    )


def encode_default_huffman(values: Iterable[int]) -> bytes:
    """Huffman-code ``values`` (16-bit signed integers) with the standard's default table."""
    bits = "".join(_code(int(v)) for v in values)
    if not bits:
        return b""
    array = np.frombuffer(bits.encode("ascii"), dtype=np.uint8) - ord("0")
    return np.packbits(array).tobytes()


def decode_default_huffman(data: bytes, count: int) -> npt.NDArray[np.int64]:
    """Decode ``count`` values from ``data``; raise :class:`ScpEcgError` when the data run out."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).tobytes().decode("latin-1")
    bits = bits.translate({0: "0", 1: "1"})
    total = len(bits)
    out = np.empty(count, dtype=np.int64)
    position = 0
    for index in range(count):
        zero = bits.find("0", position, position + 10)
        if zero < 0:
            if position + 10 > total:
                raise _ran_out(index, count)
            # ten one-bits: a 16-bit value follows
            raw = bits[position + 10 : position + 26]
            if len(raw) < 16:
                raise _ran_out(index, count)
            value = int(raw, 2)
            out[index] = value - 0x10000 if value & 0x8000 else value
            position += 26
            continue
        ones = zero - position
        if ones == 0:
            out[index] = 0
            position += 1
        elif ones <= _SHORT_MAX:
            sign = bits[zero + 1 : zero + 2]
            if not sign:
                raise _ran_out(index, count)
            out[index] = -ones if sign == "1" else ones
            position = zero + 2
        else:  # nine one-bits and a zero: an 8-bit value follows
            raw = bits[zero + 1 : zero + 9]
            if len(raw) < 8:
                raise _ran_out(index, count)
            value = int(raw, 2)
            out[index] = value - 0x100 if value & 0x80 else value
            position = zero + 9
    return out


def _ran_out(index: int, count: int) -> ScpEcgError:
    return ScpEcgError(
        f"The Huffman-coded rhythm data of a lead end after {index} of its {count} samples; "
        "the SCP-ECG file is damaged."
    )
