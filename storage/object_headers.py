"""Inflated object sizes read from object headers, without inflating the objects.

A push's quarantine holds exactly the objects the client sent, as loose objects (small pushes) or as one
pack with its index (receive-pack keeps packs of transfer.unpackLimit objects or more). Reading their
headers answers "is any object larger than N bytes, and what do they all inflate to" in-process: no
`git rev-list` per push, and memory that does not grow with the push. For a delta, the size that counts
is the size of the object it rebuilds, which is the second number at the start of the delta data
(gitformat-pack, "Deltified representation"), so only the first bytes of each delta are inflated.
"""
from __future__ import annotations

import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

OFS_DELTA, REF_DELTA = 6, 7
_IDX_MAGIC = b"\377tOc"
_HEX = frozenset("0123456789abcdef")


class CorruptObject(ValueError):
    pass


@dataclass(frozen=True)
class SizeScan:
    oversized: list[str]  # ids of the objects larger than the limit
    total: int  # the inflated size of every object scanned
    count: int = 0  # how many objects were scanned


def pack_indexes(object_dir: Path) -> list[Path]:
    """The index of each complete pack stored directly in `object_dir`."""
    pack_dir = object_dir / "pack"
    if not pack_dir.is_dir():
        return []
    return [idx for idx in sorted(pack_dir.glob("*.idx")) if idx.with_suffix(".pack").is_file()]


def all_sizes(object_dir: Path, hash_size: int = 20) -> Iterator[tuple[str, int]]:
    """(object id, inflated size) of every object stored directly in `object_dir`, loose or packed."""
    yield from _loose_sizes(object_dir)
    for idx in pack_indexes(object_dir):
        yield from pack_sizes(idx, idx.with_suffix(".pack"), hash_size)


def loose_scan(object_dir: Path, limit: int) -> SizeScan:
    """The loose objects stored directly in `object_dir`: those larger than `limit`, and their total size."""
    return _summed(_loose_sizes(object_dir), limit)


def pack_scan(idx: Path, limit: int, hash_size: int = 20) -> SizeScan:
    """The objects of one pack: those larger than `limit`, and their total size."""
    return _summed(pack_sizes(idx, idx.with_suffix(".pack"), hash_size), limit)


def _summed(sizes: Iterator[tuple[str, int]], limit: int) -> SizeScan:
    oversized, total, count = [], 0, 0
    for object_id, size in sizes:
        total += size
        count += 1
        if size > limit:
            oversized.append(object_id)
    return SizeScan(oversized, total, count)


def _loose_sizes(object_dir: Path) -> Iterator[tuple[str, int]]:
    for fan in os.scandir(object_dir):
        if len(fan.name) != 2 or not set(fan.name) <= _HEX or not fan.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(fan.path):
            if entry.is_file(follow_symlinks=False) and set(entry.name) <= _HEX:
                yield fan.name + entry.name, loose_size(Path(entry.path))


def loose_size(path: Path) -> int:
    """The size in a loose object's header ("blob 1234\\0")."""
    inflater = zlib.decompressobj()
    header = b""
    with open(path, "rb") as handle:
        while b"\0" not in header:
            data = handle.read(256)
            if not data:
                raise CorruptObject(f"truncated loose object {path.name}")
            try:
                header += inflater.decompress(data, 64 - len(header))
            except zlib.error as error:
                raise CorruptObject(f"corrupt loose object {path.name}") from error
            if len(header) >= 64 and b"\0" not in header:
                raise CorruptObject(f"bad loose object header {path.name}")
    kind_and_size = header.split(b"\0", 1)[0].split(b" ")
    if len(kind_and_size) != 2 or not kind_and_size[1].isdigit():
        raise CorruptObject(f"bad loose object header {path.name}")
    return int(kind_and_size[1])


def pack_sizes(idx_path: Path, pack_path: Path, hash_size: int = 20) -> Iterator[tuple[str, int]]:
    """(object id, inflated size) of every object in a pack, from its version 2 index."""
    with open(idx_path, "rb") as idx_file, open(pack_path, "rb") as pack_file:
        if os.fstat(idx_file.fileno()).st_size < 8 + 256 * 4 or os.fstat(pack_file.fileno()).st_size < 12:
            raise CorruptObject("truncated pack or index")
        idx = mmap.mmap(idx_file.fileno(), 0, access=mmap.ACCESS_READ)
        pack = mmap.mmap(pack_file.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield from _indexed_sizes(idx, pack, hash_size)
        finally:
            idx.close()
            pack.close()


def _indexed_sizes(idx: mmap.mmap, pack: mmap.mmap, hash_size: int) -> Iterator[tuple[str, int]]:
    if idx[:8] != _IDX_MAGIC + b"\0\0\0\2":
        raise CorruptObject("not a version 2 pack index")
    count = struct.unpack_from(">I", idx, 8 + 255 * 4)[0]
    names = 8 + 256 * 4
    offsets_at = names + count * (hash_size + 4)
    large_at = offsets_at + count * 4
    if len(idx) < large_at + 2 * hash_size:
        raise CorruptObject("truncated pack index")
    offsets = struct.unpack_from(f">{count}I", idx, offsets_at)
    pack_end = len(pack)
    for i, offset in enumerate(offsets):
        if offset & 0x80000000:
            offset = struct.unpack_from(">Q", idx, large_at + 8 * (offset & 0x7FFFFFFF))[0]
        if offset >= pack_end:
            raise CorruptObject("pack offset out of range")
        try:
            size = _packed_size(pack, offset, hash_size)
        except IndexError as error:
            raise CorruptObject("truncated pack") from error
        yield idx[names + i * hash_size: names + (i + 1) * hash_size].hex(), size


def _packed_size(pack: mmap.mmap, pos: int, hash_size: int) -> int:
    byte = pack[pos]
    kind = (byte >> 4) & 7
    size = byte & 15
    shift = 4
    pos += 1
    while byte & 0x80:
        byte = pack[pos]
        size |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
    if kind == REF_DELTA:
        return _delta_result_size(pack, pos + hash_size)
    if kind == OFS_DELTA:
        while pack[pos] & 0x80:
            pos += 1
        return _delta_result_size(pack, pos + 1)
    return size


def _delta_result_size(pack: mmap.mmap, pos: int) -> int:
    """The second varint of a delta (the first is the base's size); inflates only what that takes."""
    inflater = zlib.decompressobj()
    try:
        head = inflater.decompress(pack[pos:pos + 64], 20)
        while len(head) < 20 and not inflater.eof:
            data = inflater.unconsumed_tail
            if not data:
                pos += 64
                data = pack[pos:pos + 64]
                if not data:
                    break
            head += inflater.decompress(data, 20 - len(head))
            if _varints(head, 2)[1:]:
                break
    except zlib.error as error:
        raise CorruptObject("corrupt delta in pack") from error
    values = _varints(head, 2)
    if len(values) < 2:
        raise CorruptObject("bad delta header in pack")
    return values[1]


def _varints(data: bytes, wanted: int) -> list[int]:
    """Up to `wanted` complete little-endian base-128 numbers from the start of `data`."""
    values, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            if len(values) == wanted:
                break
            value, shift = 0, 0
    return values
