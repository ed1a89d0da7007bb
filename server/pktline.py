"""pkt-line framing (gitprotocol-common): incremental parsing, encoding, and side-band demultiplexing."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

FLUSH = b"0000"
MAX_PAYLOAD = 65516
SIDEBAND_MAX = MAX_PAYLOAD - 1


class PktError(ValueError):
    pass


def encode(payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise PktError("pkt-line payload too long")
    return b"%04x" % (len(payload) + 4) + payload


@dataclass
class PktReader:
    """Feed bytes in any chunking; `packets()` yields (raw_bytes, payload) with payload None for 0000-0002."""

    buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes | None]]:
        self.buffer += data
        while len(self.buffer) >= 4:
            try:
                length = int(self.buffer[:4], 16)
            except ValueError:
                raise PktError("bad pkt-line length") from None
            if length < 4:
                raw = bytes(self.buffer[:4])
                del self.buffer[:4]
                yield raw, None
                continue
            if len(self.buffer) < length:
                return
            raw = bytes(self.buffer[:length])
            del self.buffer[:length]
            yield raw, raw[4:]


def sideband_frames(band: int, data: bytes) -> bytes:
    return b"".join(encode(bytes([band]) + data[i:i + SIDEBAND_MAX]) for i in range(0, len(data), SIDEBAND_MAX))
