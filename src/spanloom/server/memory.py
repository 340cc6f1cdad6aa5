"""Keep the server's big, short-lived buffers from staying in its resident memory.

A request body, its decompressed copy and the budget check's copy are megabytes each and live for
one request. glibc serves such blocks with mmap and unmaps them on free, but only above its mmap
threshold, which it raises (up to 32 MiB) each time a mapped block is freed: after the first big
body the next ones come from the heap arenas of whichever threads handled them, and stay there.
Four concurrent 16 MB bodies then kept about 80 MB resident for good. A fixed threshold (which also
turns the raising off) sends every block past it back to the system when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 1024 * 1024  # batches of ordinary spans stay under it; big bodies go over


def return_big_buffers_to_the_system() -> bool:
    """Fix glibc's mmap threshold for this process; False (and nothing changed) elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused; big buffers may stay resident")
    return done
