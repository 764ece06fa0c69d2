"""Giving memory back to the system after a model load or a training.

glibc's malloc keeps what Python and the numeric libraries free in its arenas, for the
next allocation. After a training that is 30-50 MB the trainer will not use until the
next one, and after loading a model about 10 MB (``python -m bench.memory``).
:func:`trim` returns the free pages of every arena to the system (``malloc_trim(0)``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["trim"]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def trim() -> bool:
    """Return malloc's free memory to the system; False where there is no glibc."""
    trim_function = getattr(_libc(), "malloc_trim", None)
    if trim_function is None:
        return False
    return bool(trim_function(0))
