"""Where chunks start and end: fixed-size for disk images, content-defined for everything else.

Disk writes are small and land in place: fixed chunks (512 KiB by default) keep each change to
one chunk. Other files (.bak streams, documents) shift when something is inserted: FastCDC
(pyfastcdc, GIL released) finds the same boundaries again, about 1 MiB apart on average.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import BinaryIO

from pyfastcdc.cy import FastCDC

IMAGE_SUFFIXES = (".vhdx", ".avhdx", ".vhd", ".avhd", ".img", ".raw", ".vmdk", ".qcow2")
DEFAULT_IMAGE_CHUNK = 512 * 1024
CDC_MIN, CDC_AVG, CDC_MAX = 256 * 1024, 1024 * 1024, 4 * 1024 * 1024
READ_SIZE = 8 * 1024 * 1024


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


class _Reader:
    """Adapts any ``read()`` stream for pyfastcdc, in large reads."""

    def __init__(self, stream: BinaryIO | _Prefixed) -> None:
        self._stream = stream

    def read(self, n: int) -> bytes:
        return self._stream.read(max(n, READ_SIZE))


@functools.cache
def _cutter(avg: int, min_size: int, max_size: int, seed: int) -> FastCDC:
    return FastCDC(avg_size=avg - min_size, min_size=min_size, max_size=max_size, seed=seed)


def cdc_chunks(stream: BinaryIO, avg: int = CDC_AVG, min_size: int = CDC_MIN,
               max_size: int = CDC_MAX, seed: int = 0) -> Iterator[bytes]:
    """Content-defined chunks (FastCDC 2020). ``seed`` varies the gear table per repository.
    A file smaller than the minimum chunk is one chunk, with no cutting at all."""
    head = stream.read(min_size)
    if len(head) < min_size:
        if head:
            yield head
        return
    cutter = _cutter(avg, min_size, max_size, seed)
    for chunk in cutter.cut_stream(_Reader(_Prefixed(head, stream))):
        yield bytes(chunk.data)  # the view is only valid until the next chunk


class _Prefixed:
    """A stream with bytes already read put back in front."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, n: int) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data + self._stream.read(max(0, n - len(data)))
        return self._stream.read(n)


def chunks_for(name: str, stream: BinaryIO, image_chunk: int = DEFAULT_IMAGE_CHUNK,
               seed: int = 0) -> Iterator[bytes]:
    """The right chunker for a file, chosen by its name."""
    if is_image(name):
        return fixed_chunks(stream, image_chunk)
    return cdc_chunks(stream, seed=seed)
