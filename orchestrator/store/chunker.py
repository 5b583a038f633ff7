"""Where chunks start and end: fixed-size for disk images, content-defined for everything else.

Disk writes are small and land in place: fixed chunks (512 KiB by default) keep each change to
one chunk. Other files (.bak streams, documents) shift when something is inserted: FastCDC
(pyfastcdc, GIL released) finds the same boundaries again. Their sizes are the repository's
(written in its config when it is created): 64 KiB / 256 KiB / 1 MiB (minimum, average,
maximum) today, so that a database dump whose pages change here and there sends about a
quarter of what 1 MiB chunks would; repositories created before keep the 256 KiB / 1 MiB /
4 MiB they were cut with (cutting them anew would send every file again once).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import BinaryIO

from pyfastcdc.cy import FastCDC

IMAGE_SUFFIXES = (".vhdx", ".avhdx", ".vhd", ".avhd", ".img", ".raw", ".vmdk", ".qcow2")
DEFAULT_IMAGE_CHUNK = 512 * 1024
CDC_MIN, CDC_AVG, CDC_MAX = 64 * 1024, 256 * 1024, 1024 * 1024
CdcSizes = tuple[int, int, int]  # minimum, average, maximum
CDC_SIZES: CdcSizes = (CDC_MIN, CDC_AVG, CDC_MAX)
LEGACY_CDC_SIZES: CdcSizes = (256 * 1024, 1024 * 1024, 4 * 1024 * 1024)  # repositories of 2026-11
BUFFER_SIZE = 16 * 1024 * 1024  # content-defined cutting reads this much at a time


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def fixed_chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """Consecutive ``size``-byte chunks (the last may be shorter)."""
    while True:
        data = stream.read(size)
        if not data:
            return
        while len(data) < size:  # a short read before the end (network files)
            more = stream.read(size - len(data))
            if not more:
                break
            data += more
        yield data


@functools.cache
def _cutter(avg: int, min_size: int, max_size: int, seed: int) -> FastCDC:
    return FastCDC(avg_size=avg - min_size, min_size=min_size, max_size=max_size, seed=seed)


def cdc_chunks(stream: BinaryIO, avg: int = CDC_AVG, min_size: int = CDC_MIN,
               max_size: int = CDC_MAX, seed: int = 0, buffer_size: int = BUFFER_SIZE
               ) -> Iterator[bytes]:
    """Content-defined chunks (FastCDC 2020) of a stream of any size, read however the stream
    reads (short reads, network reads of any size). ``seed`` varies the gear table per
    repository. The boundaries are those pyfastcdc finds over the whole content at once: a
    boundary depends only on the at most ``max_size`` bytes after the previous one, so the
    stream is cut in a buffer, and what may still belong to an unfinished chunk (the last
    ``max_size`` bytes, until the end of the stream) is moved to its front before it is filled
    again. A file smaller than the minimum chunk is one chunk."""
    cutter = _cutter(avg, min_size, max_size, seed)
    buffer = _take_buffer(max(buffer_size, 2 * max_size))
    try:
        yield from _cut(stream, cutter, buffer, max_size)
    finally:
        with _BUFFERS_LOCK:
            _BUFFERS.append(buffer)


# Buffers are reused from file to file: a new 16 MiB one, zeroed, for each of 20,000 small files
# took three minutes. Each cutting generator holds its own while it runs.
_BUFFERS: list[bytearray] = []
_BUFFERS_LOCK = threading.Lock()


def _take_buffer(size: int) -> bytearray:
    with _BUFFERS_LOCK:
        for index, buffer in enumerate(_BUFFERS):
            if len(buffer) == size:
                return _BUFFERS.pop(index)
        if len(_BUFFERS) > 4:
            _BUFFERS.pop(0)  # sizes no longer asked for
    return bytearray(size)


def _cut(stream: BinaryIO, cutter: FastCDC, buffer: bytearray, max_size: int
         ) -> Iterator[bytes]:
    size = len(buffer)
    view = memoryview(buffer)
    filled, ended = 0, False
    while True:
        while filled < size and not ended:  # fill the buffer: reads may come short
            got = _read_into(stream, view[filled:])
            ended = got == 0
            filled += got
        if filled == 0:
            return
        kept = 0  # start of what stays in the buffer for the next round
        for chunk in cutter.cut_buf(view[:filled]):
            if not ended and chunk.offset + max_size > filled:
                break  # this chunk may end beyond what is read yet
            yield bytes(chunk.data)  # the buffer is reused: the chunk is copied out
            kept = chunk.offset + chunk.length
        if ended:
            return  # every byte of the stream is in a chunk
        rest = filled - kept
        view[:rest] = view[kept:filled]
        filled = rest


def _read_into(stream: BinaryIO, dest: memoryview) -> int:
    """Read at most ``len(dest)`` bytes into ``dest``; 0 only at the end of the stream."""
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        got = readinto(dest)
        return 0 if got is None else int(got)
    data = stream.read(len(dest))
    if len(data) > len(dest):
        raise ValueError(f"stream returned {len(data)} bytes for a read of {len(dest)}")
    dest[:len(data)] = data
    return len(data)


def check_cdc_sizes(value: object) -> CdcSizes:
    """The content-defined chunk sizes of a repository config; ValueError naming what is
    wrong (pyfastcdc's bounds: minimum 64 B to 1 MiB, average 256 B to 4 MiB, maximum 1 KiB to
    16 MiB)."""
    if not (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"chunk sizes {value!r} are not three whole numbers")
    low, avg, high = value
    if not (64 <= low < avg < high and avg - low >= 256 and low <= 2**20
            and avg - low <= 4 * 2**20 and 1024 <= high <= 16 * 2**20):
        raise ValueError(f"chunk sizes {value!r} are out of bounds")
    return low, avg, high


def chunks_for(name: str, stream: BinaryIO, image_chunk: int = DEFAULT_IMAGE_CHUNK,
               seed: int = 0, cdc: CdcSizes = CDC_SIZES) -> Iterator[bytes]:
    """The right chunker for a file, chosen by its name."""
    if is_image(name):
        return fixed_chunks(stream, image_chunk)
    low, avg, high = cdc
    return cdc_chunks(stream, avg, low, high, seed)
