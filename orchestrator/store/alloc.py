"""Keep glibc from returning every chunk buffer to the kernel.

A backup allocates and frees buffers of half a megabyte and more thousands of times a second
(reads, compressed and encrypted copies, packs). Above its mmap threshold glibc serves each
with a fresh mmap and gives it back with munmap, so every buffer costs page faults and zeroing
in the kernel: measured here, a fifth of a first backup's time went to it. Raising the
threshold and the trim threshold keeps those buffers in the heap and reuses them. The cost is
memory already used staying mapped, bounded by the pipeline's own peak (about 100 MB).

No effect, and no error, where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
_done = False


def keep_buffers() -> None:
    """Idempotent; call before a backup or a restore."""
    global _done
    if _done:
        return
    _done = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc (macOS, Windows, musl without mallopt): nothing to tune
    ok = all(mallopt(option, value) == 1 for option, value in (
        (M_MMAP_THRESHOLD, 8 * 1024 * 1024), (M_TRIM_THRESHOLD, 128 * 1024 * 1024)))
    log.debug("allocator tuned for large buffers: %s", ok)
