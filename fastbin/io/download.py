"""Verified, atomic downloads (standard library only).

A file is streamed into a temporary file ``.<target name>.<16 hex>.part`` in the
target's directory, checked (byte count against ``Content-Length``, size cap,
SHA-256), fsynced, then ``os.replace``-d onto the target
(:func:`fastbin.io.atomic.atomic_write`). Any failure deletes the temporary
file, so an interrupted or bad download never leaves a file at the target name;
the ``.part`` file of a download killed outright is deleted by the next download
of the same target once it is ``STALE_TEMP_SECONDS`` old. Each read waits at
most ``timeout`` seconds, and the whole call at most ``deadline`` seconds (a
server that sends one byte now and then cannot hold it indefinitely).
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

from .atomic import atomic_write

__all__ = ["DEADLINE", "DownloadError", "download_file"]

_CHUNK = 1 << 16
MAX_DOWNLOAD_BYTES = 64 << 20  # the largest known dataset file is ~26 MB
#: Default overall deadline of one :func:`download_file` call, in seconds.
DEADLINE = 600.0


class DownloadError(OSError):
    """No location gave a complete file with the expected SHA-256.

    ``reasons``: one ``"url: why"`` string per location tried, in order."""

    reasons: tuple = ()


def _fetch(url: str, tmp, sha256: str, timeout: float, max_bytes: int, end: float, deadline: float) -> None:
    import urllib.request

    def remaining():
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete file within the {deadline:g} s deadline")
        return left

    with urllib.request.urlopen(url, timeout=min(timeout, remaining())) as response:
        declared = response.headers.get("Content-Length")
        declared = int(declared) if declared is not None and declared.isdigit() else None
        if declared is not None and declared > max_bytes:
            raise ValueError(f"server declares {declared} bytes, more than the {max_bytes} cap")
        h = hashlib.sha256()
        received = 0
        read = getattr(response, "read1", response.read)  # read1: what one receive gives, not a full chunk
        while True:
            remaining()
            chunk = read(_CHUNK)
            if not chunk:
                break
            received += len(chunk)
            if received > max_bytes:
                raise ValueError(f"more than {max_bytes} bytes received")
            h.update(chunk)
            tmp.write(chunk)
    if declared is not None and received != declared:
        raise ValueError(f"connection closed after {received} of {declared} bytes")
    if h.hexdigest() != sha256:
        raise ValueError(f"SHA-256 {h.hexdigest()} does not match the expected {sha256}")


def download_file(urls, target, sha256: str, *, timeout: float = 60.0, max_bytes: int = MAX_DOWNLOAD_BYTES,
                  deadline: float = DEADLINE) -> str:
    """Download the first of ``urls`` that yields bytes with digest ``sha256``
    to ``target`` (atomically). Returns the URL used. ``timeout``: seconds one
    read may wait; ``deadline``: seconds the whole call may take, every URL
    included (checked before each read, so it is overrun by at most one read).

    Raises
    ------
    DownloadError
        Every URL failed (offline, HTTP error, short transfer, wrong digest,
        the deadline passed); the message lists each URL and why. Nothing is
        left at ``target``.
    """
    import http.client  # imported here: keeps `import fastbin` light
    import urllib.error

    target = Path(target)
    errors = []
    end = time.monotonic() + deadline
    for url in urls:
        try:
            with atomic_write(target, suffix=".part") as tmp:
                _fetch(url, tmp, sha256, timeout, max_bytes, end, deadline)
            return url
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, HTTPError, timeouts are OSErrors
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            errors.append(f"{url}: {type(exc).__name__}: {reason}")
    error = DownloadError(
        f"could not download {target.name} (are you offline?); tried:\n" + "\n".join(f"  {e}" for e in errors)
        + "\nPut the files in $FASTBIN_DATA/<dataset>/ or pass path= to use a local copy."
    )
    error.reasons = tuple(errors)
    raise error
