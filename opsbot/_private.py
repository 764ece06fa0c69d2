"""Files only their owner can read: the state dir is 0700, everything in it 0600.

The state dir (``.opsbot/``) holds the logs, the tracker and the audit store, the run's
credentials.yml and endpoints.yml, token and port files. Other users of the machine
have no business reading any of it: a log line or a conversation can carry what a
secret filter cannot know about. opsbot creates what it writes there with these
helpers, starts its servers with :data:`UMASK` (so the SQLite files, the embedding cache
and the trainer's port file are private too), and :func:`secure_state_dir` tightens
whatever an older opsbot, or another tool, left with looser modes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

__all__ = ["DIR_MODE", "FILE_MODE", "UMASK", "open_private", "private_dir", "secure_state_dir",
           "tighten", "write_private"]

DIR_MODE = 0o700
FILE_MODE = 0o600
UMASK = 0o077  # for the servers opsbot starts: what they create, only their owner reads


def tighten(path: Path) -> None:
    """Take group and other permissions off ``path`` (not following a symlink).

    A path owned by someone else is left alone: we could not change it, and it is not
    ours to change.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
        return
    if info.st_mode & UMASK:
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~UMASK)


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter: the missing ones (parents too)
    are created 0700; an existing one loses group and other permissions."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered through the umask
    tighten(path)
    return path


def _open_fd(path: Path, flags: int) -> int:
    private_dir(path.parent)
    descriptor = os.open(path, flags | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        info = os.fstat(descriptor)
        if info.st_uid == os.geteuid() and info.st_mode & UMASK:
            os.fchmod(descriptor, stat.S_IMODE(info.st_mode) & ~UMASK)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def open_private(path: Path, append: bool = True) -> IO[bytes]:
    """``path`` opened for binary writing (appending unless ``append`` is False), created
    0600, an existing file tightened to that."""
    flags = os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(_open_fd(path, flags), "ab" if append else "wb")


def write_private(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path``, readable by its owner only (0600, in a 0700 directory)."""
    with open_private(path, append=False) as file:
        file.write(text.encode(encoding))
    return path


def secure_state_dir(state_dir: Path) -> Path:
    """The state dir made private (0700), and everything in it: group and other lose
    their permissions on each file and directory. Symlinks are not followed.

    A state dir that is a home directory or a filesystem root (a mistaken
    ``OPSBOT_STATE_DIR``) is made private itself, but what is in it is not touched.
    """
    private_dir(state_dir)
    resolved = state_dir.resolve()
    if resolved == resolved.parent or resolved == Path.home().resolve():
        return state_dir
    for root, directories, files in os.walk(state_dir):
        for name in directories + files:
            tighten(Path(root) / name)
    return state_dir
