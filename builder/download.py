"""HTTP downloads that are hashed while streaming and land only when verified."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import requests

from . import log
from .errors import FetchError, VerifyError

TIMEOUT = (15, 60)  # connect, read (seconds)
CHUNK = 1 << 16


def download(url: str, dest: Path, *, sha256: str = "", size: int = 0, what: str) -> Path:
    """Download `url` to `dest` through `dest.partial`; `what` names the source in messages.

    The file is renamed into place only after it arrived whole and, when
    `sha256` is given, matched it; a failed download leaves nothing behind.
    """
    partial = dest.with_name(dest.name + ".partial")
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    try:
        with requests.get(url, stream=True, timeout=TIMEOUT) as response:
            if response.status_code != 200:
                raise FetchError(
                    f"{what}: {url} answered HTTP {response.status_code}",
                    "check the URL in the pin, or use another source (--from / --source)",
                )
            expected_len = int(response.headers.get("Content-Length") or 0) or size
            progress = log.Progress(f"downloading {dest.name}", expected_len or None)
            got = 0
            with open(partial, "wb") as f:
                for block in response.iter_content(CHUNK):
                    f.write(block)
                    h.update(block)
                    got += len(block)
                    progress.update(len(block))
            progress.close()
    except requests.RequestException as exc:
        partial.unlink(missing_ok=True)
        raise FetchError(
            f"{what}: cannot download {url}: {exc.__class__.__name__}: {exc}",
            "check the network, or use a cached or local copy (--source PATH)",
        ) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if response.headers.get("Content-Length") and got != int(response.headers["Content-Length"]):
        partial.unlink(missing_ok=True)
        raise FetchError(
            f"{what}: download of {url} was cut short ({got} of {response.headers['Content-Length']} bytes)",
            "run the command again",
        )
    digest = h.hexdigest()
    if sha256 and digest != sha256:
        partial.unlink(missing_ok=True)
        raise VerifyError(
            f"{what}: {dest.name} has the wrong sha256\n  expected {sha256}\n  got      {digest}",
            "the file on the server is not the pinned one; do not build it. Check the pin, or pass --source with a trusted copy",
        )
    os.replace(partial, dest)
    return dest
