"""Bounded HTTP for the ESMFold API client (`fold`); `load`, whose Hub downloads go through
huggingface_hub, uses `in_thread` to bound its look at the Hub. Standard library only.

Three guards, each against a way a download goes wrong:

- `in_thread`: a call bounded in wall time by a daemon thread, because `urlopen`'s timeout does
  not cover name resolution, which can hang for tens of seconds behind some firewalls;
- `HostBoundRedirects` (and `NoRedirects`): redirects are followed only to hosts the caller
  trusts, so a server cannot send the client to fetch from anywhere;
- `copy_capped` and `read_capped`: a body is refused as soon as it passes a size cap, whatever
  its `Content-Length` claims, so a hostile or broken server cannot fill the disk or memory.
"""

import http.client
import io
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = [
    "NETWORK_ERRORS",
    "HostBoundRedirects",
    "NoRedirects",
    "Readable",
    "Writable",
    "copy_capped",
    "header_int",
    "in_thread",
    "open_url",
    "read_capped",
]

Result = TypeVar("Result")

USER_AGENT = "tutorial_lib"
#: What a failed connection or request raises (`HTTPError` is a `URLError`).
NETWORK_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException)


def in_thread(work: Callable[[], Result], timeout: float) -> Result | None:
    """`work()` run in a daemon thread for at most `timeout` seconds.

    Returns its result, or None if it has not returned by then (it is left to finish or hang
    unobserved). An exception it raises is raised here.
    """
    result: list[Result] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as e:  # handed to the caller's thread
            error.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if error:
        raise error[0]
    return result[0] if result else None


class HostBoundRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only if `trusted(host)`; otherwise raises `refuse(url, host)`, where
    `url` is the redirecting request's and `host` the one it points to."""

    def __init__(self, trusted: Callable[[str], bool], refuse: Callable[[str, str], BaseException]):
        super().__init__()
        self.trusted = trusted
        self.refuse = refuse

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        host = urllib.parse.urlsplit(newurl).hostname or ""
        if not self.trusted(host):
            fp.close()
            raise self.refuse(req.full_url, host)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """Follows no redirect: urllib then raises an `HTTPError` carrying the 3xx status and
    headers (what a HEAD probe wants to read)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def open_url(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    timeout: float,
    redirects: urllib.request.HTTPRedirectHandler,
) -> Any:
    """Open `url` with the library's User-Agent and the given redirect policy (a response to
    use in a `with` block; `HTTPError` for an error status)."""
    request = urllib.request.Request(
        url, data=data, method=method, headers={"User-Agent": USER_AGENT}
    )
    return urllib.request.build_opener(redirects).open(request, timeout=timeout)


def header_int(value: str | None) -> int | None:
    """A header value as a non-negative int, or None if absent or not a plain number."""
    return int(value) if value and value.isascii() and value.isdigit() else None


@runtime_checkable
class Readable(Protocol):
    """A binary stream to read from: an HTTP response, an open file, a `BytesIO`."""

    def read(self, size: int = -1, /) -> bytes: ...


@runtime_checkable
class Writable(Protocol):
    """A binary stream to write to: a file opened for writing, a `BytesIO`."""

    def write(self, data: bytes, /) -> int: ...


def copy_capped(r: Readable, f: Writable, cap: int, too_big: BaseException) -> int:
    """Copy the body of `r` to `f`, raising `too_big` as soon as it passes `cap` bytes; returns
    the number of bytes copied."""
    n = 0
    while chunk := r.read(1 << 20):
        n += len(chunk)
        if n > cap:
            raise too_big
        f.write(chunk)
    return n


def read_capped(r: Readable, cap: int, too_big: BaseException) -> bytes:
    """The body of `r`, raising `too_big` as soon as it passes `cap` bytes."""
    buffer = io.BytesIO()
    copy_capped(r, buffer, cap, too_big)
    return buffer.getvalue()
