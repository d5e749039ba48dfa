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
    got = expected_len = 0
    try:
        with requests.get(url, stream=True, timeout=TIMEOUT) as response:
            if response.status_code != 200:
                raise FetchError(
                    f"{what}: {url} answered HTTP {response.status_code}",
                    "check the URL in the pin, or use another source (--from / --source)",
                )
            expected_len = int(response.headers.get("Content-Length") or 0) or size
            progress = log.Progress(f"downloading {dest.name}", expected_len or None)
            with open(partial, "wb") as f:
                for block in response.iter_content(CHUNK):
                    f.write(block)
                    h.update(block)
                    got += len(block)
                    progress.update(len(block))
            progress.close()
    except requests.RequestException as exc:
        partial.unlink(missing_ok=True)
        if got:  # the body stopped early (requests checks it against Content-Length)
            raise FetchError(
                f"{what}: download of {url} was cut short after {got} of {expected_len or 'unknown'} bytes ({exc.__class__.__name__})",
                "run the command again; nothing of it was kept",
            ) from exc
        raise FetchError(
            f"{what}: cannot download {url}: {exc.__class__.__name__}: {exc}",
            "check the network, or use a cached or local copy (--source PATH)",
        ) from exc
    except BaseException:  # also Ctrl-C: no partial file is left behind
        partial.unlink(missing_ok=True)
        raise
    digest = h.hexdigest()
    if sha256 and digest != sha256:
        partial.unlink(missing_ok=True)
        raise VerifyError(
            f"{what}: {dest.name} has the wrong sha256\n  expected {sha256}\n  got      {digest}",
            "the file on the server is not the pinned one; do not build it. Check the pin, or pass --source with a trusted copy",
        )
    os.replace(partial, dest)
    return dest
