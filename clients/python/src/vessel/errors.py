"""vessel's exceptions, named as in the guest SDK, so code that catches
`vessel.NotFound` or `vessel.PreconditionFailed` runs the same inside a
function and outside it.

Every error is a `vessel.Error`; `str(e)` reads like "not found: dict `kv`
does not exist", `e.detail` is the server's sentence alone, `e.kind` its
machine-readable kind (`not_found`, `conflict`, ...) and `e.status` the HTTP
status (0 when the server was never reached). A missing key is Python's own
`KeyError`, as with a Python dict.
"""

from __future__ import annotations

import builtins

from typing import Any, Dict, List, Optional, Sequence, Type

__all__ = [
    "Error",
    "NotFound",
    "AccessDenied",
    "Unauthorized",
    "AlreadyExists",
    "Conflict",
    "InvalidArgument",
    "TooLarge",
    "Busy",
    "NoSpace",
    "PreconditionFailed",
    "Unavailable",
    "TooManyRequests",
    "Timeout",
    "IoError",
    "CallFailed",
    "RemoteError",
    "CodecError",
    "InternalError",
    "ConnectError",
]


class Error(Exception):
    """Anything that went wrong in a vessel call."""

    #: How `str()` of this case starts.
    label = "vessel error"

    def __init__(self, detail: str = "", *, kind: str = "", status: int = 0) -> None:
        super().__init__(detail)
        #: The server's description (the name, path or key at fault).
        self.detail = detail
        #: The API's error kind (`not_found`, ...), when the server answered.
        self.kind = kind
        #: The HTTP status, when the server answered.
        self.status = status

    def __str__(self) -> str:
        return f"{self.label}: {self.detail}" if self.detail else self.label


class NotFound(Error):
    """The volume, dict, path, app, function or call does not exist."""

    label = "not found"


class AccessDenied(Error):
    """The token's scopes do not allow this."""

    label = "access denied"


class Unauthorized(AccessDenied):
    """No valid token: set `VESSEL_TOKEN` (see `vessel token create`)."""

    label = "unauthorized"


class AlreadyExists(Error):
    """The thing to create exists already (and overwriting was not asked)."""

    label = "already exists"


class Conflict(Error):
    """The request conflicts with the current state: a path that is not a
    directory, a volume mounted elsewhere, a name in use."""

    label = "conflict"


class InvalidArgument(Error, ValueError):
    """A malformed argument: a bad name, path, key, range or JSON text."""

    label = "invalid argument"


class TooLarge(Error):
    """A value, batch or request is over a documented limit."""

    label = "too large"


class Busy(Error):
    """The volume is in use (mounted by a running function), or the key is
    locked."""

    label = "busy"

    def __init__(self, detail: str = "", *, paths: Sequence[str] = (), kind: str = "busy", status: int = 0) -> None:
        super().__init__(detail, kind=kind, status=status)
        #: Open paths, when the server named them.
        self.paths: List[str] = list(paths)


class NoSpace(Error):
    """A quota is exhausted: the volume's byte or inode limit, or the disk."""

    label = "no space"


class PreconditionFailed(Error):
    """A conditional write lost: the version did not match, or the lease is
    no longer held."""

    label = "precondition failed"

    def __init__(self, detail: str = "", *, current_version: Optional[int] = None, kind: str = "precondition_failed", status: int = 0) -> None:
        super().__init__(detail, kind=kind, status=status)
        #: The entry's version when the condition failed (None: absent or
        #: not said).
        self.current_version = current_version


class Unavailable(Error):
    """The store or the server cannot serve now; a retry may succeed."""

    label = "unavailable"


class TooManyRequests(Unavailable):
    """The token holds its limit of calls or body bytes; `retry_after` says
    when to try again (seconds)."""

    label = "too many requests"

    def __init__(self, detail: str = "", *, retry_after: Optional[float] = None, kind: str = "too_many", status: int = 0) -> None:
        super().__init__(detail, kind=kind, status=status)
        self.retry_after = retry_after


class Timeout(Error):
    """The request or the function ran out of time."""

    label = "timeout"


class IoError(Error):
    """An I/O error in the server's storage."""

    label = "i/o error"


class CallFailed(Error):
    """A called function trapped, timed out or returned an error."""

    label = "call failed"


class RemoteError(CallFailed):
    """The function raised an exception it did not catch, of a type this
    side does not rebuild (not a builtin one). A builtin one (`ValueError`,
    `KeyError`, ...) is raised as itself instead, with this error as its
    `.remote` and the function's traceback as a note."""

    def __init__(self, detail: str, *, type: str, message: str, traceback: str, status: int = 0) -> None:
        super().__init__(detail, kind="call_failed", status=status)
        #: The exception's type as the function named it (`ValueError`,
        #: `app.Overdrawn`).
        self.type = type
        #: `str()` of the exception in the function.
        self.message = message
        #: The function's traceback, as its language printed it.
        self.traceback = traceback


def raised_error(detail: str, raised: Any, status: int = 0) -> Exception:
    """The exception for a call whose function raised `raised` (the API's
    `{type_name, message, traceback}`): a builtin type as itself, anything
    else as `RemoteError`."""
    remote = RemoteError(
        detail,
        type=str(raised.get("type_name", "")),
        message=str(raised.get("message", "")),
        traceback=str(raised.get("traceback", "")),
        status=status,
    )
    cls = getattr(builtins, remote.type, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        return remote
    message = remote.message
    if cls is KeyError and len(message) >= 2 and message[0] == message[-1] and message[0] in "'\"":
        # str(KeyError('k')) is "'k'": rebuild KeyError('k').
        message = message[1:-1]
    try:
        exc = cls(message)
    except Exception:
        return remote
    exc.remote = remote  # type: ignore[attr-defined]
    if hasattr(exc, "add_note") and remote.traceback:
        exc.add_note(f"raised in the function; its traceback:\n{remote.traceback.rstrip()}")
    return exc


class CodecError(Error, ValueError):
    """A value could not be encoded to JSON or decoded from it."""

    label = "cannot encode or decode the value"


class InternalError(Error):
    """The server failed (its log has the cause)."""

    label = "server error"


class ConnectError(Unavailable):
    """The server could not be reached."""

    label = "cannot connect"


_BY_KIND: Dict[str, Type[Error]] = {
    "invalid_argument": InvalidArgument,
    "bad_range": InvalidArgument,
    "unauthorized": Unauthorized,
    "access_denied": AccessDenied,
    "not_found": NotFound,
    "already_exists": AlreadyExists,
    "conflict": Conflict,
    "precondition_failed": PreconditionFailed,
    "timeout": Timeout,
    "too_large": TooLarge,
    "no_space": NoSpace,
    "call_failed": CallFailed,
    "unavailable": Unavailable,
    "io": IoError,
    "internal": InternalError,
}

_BY_STATUS: Dict[int, Type[Error]] = {
    400: InvalidArgument,
    401: Unauthorized,
    403: AccessDenied,
    404: NotFound,
    408: Timeout,
    409: Conflict,
    412: PreconditionFailed,
    413: TooLarge,
    416: InvalidArgument,
    422: CallFailed,
    503: Unavailable,
    507: NoSpace,
}


def from_response(status: int, kind: str, message: str, headers: Dict[str, str]) -> Error:
    """The exception for an error answer of the API."""
    if kind == "busy":
        return Busy(message, status=status)
    if kind == "too_many" or status == 429:
        retry = headers.get("retry-after")
        try:
            after = float(retry) if retry is not None else None
        except ValueError:
            after = None
        return TooManyRequests(message, retry_after=after, status=status)
    if kind == "precondition_failed" or status == 412:
        etag = headers.get("etag", "").strip('"')
        return PreconditionFailed(
            message, current_version=int(etag) if etag.isdigit() else None, status=status
        )
    cls = _BY_KIND.get(kind) or _BY_STATUS.get(status) or (InternalError if status >= 500 else Error)
    return cls(message, kind=kind, status=status)
