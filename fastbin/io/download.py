"""Verified, atomic downloads (standard library only).

A file is streamed into a temporary file in the target's directory, checked
(byte count against ``Content-Length``, size cap, SHA-256), fsynced, then
``os.replace``-d onto the target. Any failure deletes the temporary file, so
an interrupted or bad download never leaves a file at the target name.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["DownloadError", "download_file"]

_CHUNK = 1 << 16
MAX_DOWNLOAD_BYTES = 64 << 20  # the largest known dataset file is ~26 MB


class DownloadError(OSError):
    """No location gave a complete file with the expected SHA-256.

    ``reasons``: one ``"url: why"`` string per location tried, in order."""

    reasons: tuple = ()


def _fetch(url: str, tmp, sha256: str, timeout: float, max_bytes: int) -> None:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        declared = response.headers.get("Content-Length")
        declared = int(declared) if declared is not None and declared.isdigit() else None
        if declared is not None and declared > max_bytes:
            raise ValueError(f"server declares {declared} bytes, more than the {max_bytes} cap")
        h = hashlib.sha256()
        received = 0
        while True:
            chunk = response.read(_CHUNK)
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
    tmp.flush()
    os.fsync(tmp.fileno())


def download_file(urls, target, sha256: str, *, timeout: float = 60.0, max_bytes: int = MAX_DOWNLOAD_BYTES) -> str:
    """Download the first of ``urls`` that yields bytes with digest ``sha256``
    to ``target`` (atomically). Returns the URL used.

    Raises
    ------
    DownloadError
        Every URL failed (offline, HTTP error, short transfer, wrong digest);
        the message lists each URL and why. Nothing is left at ``target``.
    """
    import http.client  # imported here: keeps `import fastbin` light
    import urllib.error

    target = Path(target)
    errors = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as tmp:
                _fetch(url, tmp, sha256, timeout, max_bytes)
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, target)
            return url
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, HTTPError, timeouts are OSErrors
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            errors.append(f"{url}: {type(exc).__name__}: {reason}")
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    error = DownloadError(
        f"could not download {target.name} (are you offline?); tried:\n" + "\n".join(f"  {e}" for e in errors)
        + "\nPut the files in $FASTBIN_DATA/<dataset>/ or pass path= to use a local copy."
    )
    error.reasons = tuple(errors)
    raise error
