"""Giving freed memory back to the system (opsbot/_memory.py)."""

from __future__ import annotations

import platform

import pytest

from opsbot._memory import trim


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_memory_goes_back_to_the_system() -> None:
    blocks = [bytearray(64 * 1024) for _ in range(2000)]  # 128 MB in malloc's arenas
    del blocks
    assert trim() is True
