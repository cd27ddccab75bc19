"""How a backend stores a value: one flag byte, then the raw or LZ4 bytes.

Values of at least `threshold` bytes are compressed with LZ4 (block format,
size stored) and kept compressed only if that saves space: float32 vectors
barely compress, records and result lists do. A value whose flag byte is
unknown (written by a newer server, or corrupt) reads as a miss.
"""

from __future__ import annotations

from typing import Final

import lz4.block

RAW: Final = 0
LZ4: Final = 1

_RAW_FLAG: Final = bytes([RAW])
_LZ4_FLAG: Final = bytes([LZ4])

#: The default threshold: a Redis round trip moves ~1 KB in well under a
#: microsecond more, so smaller values are not worth the CPU.
DEFAULT_COMPRESS_THRESHOLD: Final = 1024


def pack(value: bytes, threshold: int | None) -> bytes:
    """The stored form of `value`; threshold None never compresses."""
    if threshold is not None and len(value) >= threshold:
        packed = bytes(lz4.block.compress(value, store_size=True))
        if len(packed) + 1 < len(value):
            return _LZ4_FLAG + packed
    return _RAW_FLAG + value


def unpack(frame: bytes) -> bytes | None:
    """The value of a stored frame; None when it cannot be read."""
    if not frame:
        return None
    flag = frame[0]
    if flag == RAW:
        return frame[1:]
    if flag == LZ4:
        try:
            return bytes(lz4.block.decompress(frame[1:]))
        except (lz4.block.LZ4BlockError, ValueError):
            return None
    return None
