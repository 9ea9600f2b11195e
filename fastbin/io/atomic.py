"""Atomic file replacement, the one way fastbin writes a file it may replace (model files, the C
export, downloads).

:func:`atomic_write` yields a binary file object on a temporary file ``.<target name>.<16 hex><suffix>``
in the target's directory; when the block ends without an error the file is flushed and fsynced,
given its mode, passed to ``check`` (if any), and ``os.replace``-d onto the target; on any error Python
sees (``KeyboardInterrupt`` included) it is deleted and the target is untouched.

* Only a regular file is replaced: a symbolic link, directory, device node, FIFO or socket at the
  target is refused (``FileExistsError`` saying what it is), before anything is written and again just
  before the rename. ``fastbin train -o /dev/null`` run as root does not replace the device.
* Modes: a new file gets what the umask allows (created ``0o666 & ~umask``, as ``open`` does); a file
  that replaces another keeps the mode of the one it replaces.
* A process killed outright (SIGKILL, power loss) cannot clean up: each write deletes the temporary
  files of *the same target* (exactly that pattern, owned by this user) older than
  :data:`STALE_TEMP_SECONDS`: old enough that no write still holds them.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import time
from contextlib import contextmanager

__all__ = ["STALE_TEMP_SECONDS", "atomic_write", "remove_stale_temps", "replaceable_mode"]

#: A temporary file of an interrupted write older than this (seconds) is deleted by the next
#: write of the same target.
STALE_TEMP_SECONDS = 3600

_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def replaceable_mode(path) -> int | None:
    """The permission bits of the regular file at ``path``, or None when nothing is there.
    ``FileExistsError`` (an ``OSError``) when ``path`` is anything else: a symbolic link (even to
    a regular file), a directory, a device node, a FIFO or a socket."""
    path = os.fspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISREG(st.st_mode):
        return stat.S_IMODE(st.st_mode)
    what = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
    raise FileExistsError(errno.EEXIST, f"refusing to replace {what}: only a regular file is replaced", path)


def _temp_pattern(base: str, suffix: str):
    return re.compile(rf"\.{re.escape(base)}\.[0-9a-f]{{16}}{re.escape(suffix)}")


def remove_stale_temps(directory: str, base: str, suffix: str = ".tmp") -> None:
    """Delete ``.<base>.<16 hex><suffix>`` files in ``directory`` older than STALE_TEMP_SECONDS."""
    pattern, cutoff = _temp_pattern(base, suffix), time.time() - STALE_TEMP_SECONDS
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not pattern.fullmatch(name):
            continue
        full = os.path.join(directory, name)
        try:
            st = os.lstat(full)
            if st.st_mtime < cutoff and stat.S_ISREG(st.st_mode) and (
                    not hasattr(os, "getuid") or st.st_uid == os.getuid()):
                os.unlink(full)
        except OSError:  # gone already, or not ours to remove
            pass


def _open_temp(directory: str, base: str, suffix: str):
    """(fd, name) of a new ``.<base>.<16 hex><suffix>`` in ``directory``, created exclusively
    with mode ``0o666 & ~umask``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        name = os.path.join(directory, f".{base}.{secrets.token_hex(8)}{suffix}")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory}")


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable; not possible everywhere."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


@contextmanager
def atomic_write(path, *, check=None, suffix: str = ".tmp"):
    """``with atomic_write(path) as f: f.write(...)``: ``f`` a binary file on a temporary file
    next to ``path``, which replaces ``path`` when the block ends without an error (see the
    module doc). ``check(temp_path)``, if given, runs on the complete, fsynced temporary file
    just before the rename; an exception from it cancels the write. Raises
    ``FileExistsError`` when ``path`` is not a regular file, ``OSError`` from the filesystem."""
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    mode = replaceable_mode(path)
    fd, tmp_name = _open_temp(directory, base, suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if mode is not None:
                if hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), mode)
                else:  # pragma: no cover - Windows
                    os.chmod(tmp_name, mode)
            os.fsync(f.fileno())
        if check is not None:
            check(tmp_name)
        replaceable_mode(path)  # again: it may have changed while we wrote
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.lexists(tmp_name):
            os.unlink(tmp_name)
        raise
    remove_stale_temps(directory, base, suffix)
    _fsync_directory(directory)
