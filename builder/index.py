"""Finding a release file on a package index (the simple repository API)."""

from __future__ import annotations

import requests

from .errors import FetchError


def find_file_url(index_url: str | None, project: str, filename: str, what: str) -> str:
    """The download URL of `filename` in `project` on the index (the client's default when None)."""
    from pypi_simple import PyPISimple  # only needed when the archive is not cached yet

    client = PyPISimple(endpoint=index_url) if index_url else PyPISimple()
    shown = index_url or "the default package index"
    try:
        with client:
            page = client.get_project_page(project, timeout=30)
    except requests.RequestException as exc:
        raise FetchError(
            f"{what}: cannot read project {project!r} from {shown}: {exc.__class__.__name__}: {exc}",
            "check the network or --index-url, or use a cached or local copy (--source PATH)",
        ) from exc
    except Exception as exc:  # the client raises its own errors for missing projects and bad pages
        raise FetchError(
            f"{what}: {shown} has no usable page for project {project!r}: {exc}",
            "check --index-url (pip's index-url is used by default)",
        ) from exc
    for package in page.packages:
        if package.filename == filename:
            return package.url
    raise FetchError(
        f"{what}: {shown} lists no file {filename} for project {project!r}",
        "the release may have been removed; use another source (--from / --source)",
    )
