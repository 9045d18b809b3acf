"""vessel's exceptions: one class per case of the WIT `error` variant.

Every error a vessel call raises is a `vessel.Error`; catch a subclass for
one case::

    try:
        vol = vessel.Volume.from_name("weights")
    except vessel.NotFound:
        ...

`str(e)` reads like "not found: volume `weights` does not exist"; the host's
detail alone is `e.detail`.
"""

from __future__ import annotations

from typing import Any, Callable, List, TypeVar

__all__ = [
    "Error",
    "NotFound",
    "AccessDenied",
    "AlreadyExists",
    "InvalidArgument",
    "TooLarge",
    "Busy",
    "NoSpace",
    "PreconditionFailed",
    "Conflict",
    "Unavailable",
    "IoError",
    "CallFailed",
    "RemoteError",
    "CodecError",
]


class Error(Exception):
    """Anything that went wrong in a vessel call."""

    #: How `str()` of this case starts.
    label = "vessel error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        #: The host's description (the name, path or key at fault).
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.label}: {self.detail}" if self.detail else self.label


class NotFound(Error):
    """The volume, dict, path, key or function does not exist."""

    label = "not found"


class AccessDenied(Error):
    """The function's manifest does not grant it, or the mount is read-only."""

    label = "access denied"


class AlreadyExists(Error):
    """The thing to create exists already (and overwriting was not asked)."""

    label = "already exists"


class InvalidArgument(Error, ValueError):
    """A malformed argument: a bad name, path, key, range or JSON text."""

    label = "invalid argument"


class TooLarge(Error):
    """A value, batch or request is over a documented limit."""

    label = "too large"


class Busy(Error):
    """`reload()` found open files under the mount; `paths` lists them."""

    label = "volume busy"

    def __init__(self, paths: List[str]) -> None:
        super().__init__("open files: " + ", ".join(paths))
        #: The open paths, relative to the mount.
        self.paths = list(paths)


class NoSpace(Error):
    """A quota is exhausted: the volume's inode limit or the disk."""

    label = "no space"


class PreconditionFailed(Error):
    """A conditional write lost: the version did not match, or the lease is
    no longer held."""

    label = "precondition failed"


class Conflict(PreconditionFailed):
    """`Volume.commit(conflicts="fail")` found that other commits changed
    `paths` since this container read them: nothing was committed, and the
    changes stay. Read the paths at `head` (`Volume.from_name(name,
    version=head)`), merge, and commit again: it lands unless yet another
    commit changed them."""

    label = "conflict"

    def __init__(self, paths: List[str], head: int) -> None:
        super().__init__(f"other commits (up to version {head}) changed " + ", ".join(paths))
        #: The conflicting paths, relative to the volume root.
        self.paths = list(paths)
        #: The volume's latest version when the conflict was found.
        self.head = head


class Unavailable(Error):
    """The store or the callee cannot serve now; a retry may succeed."""

    label = "unavailable"


class IoError(Error):
    """An I/O error in the host's storage."""

    label = "i/o error"


class CallFailed(Error):
    """A called function trapped, timed out or returned an error."""

    label = "call failed"


class RemoteError(CallFailed):
    """A called function raised an exception it did not catch, of a type
    this side does not rebuild (not a builtin exception). A builtin one
    (`ValueError`, `KeyError`, ...) is raised as itself instead, with this
    error as its `.remote` and the callee's traceback as a note."""

    def __init__(self, detail: str, type: str, message: str, traceback: str) -> None:
        super().__init__(detail)
        #: The exception's type as the callee named it (`ValueError`,
        #: `app.Overdrawn`).
        self.type = type
        #: `str()` of the exception in the callee.
        self.message = message
        #: The callee's traceback, as Python printed it there.
        self.traceback = traceback


class CodecError(Error, ValueError):
    """A value could not be encoded to JSON or decoded from it."""

    label = "cannot encode or decode the value"


# The WIT cases by the names componentize-py gives their classes
# (`Error_NotFound`, ...), so this module does not depend on the bindings.
_BY_CASE = {
    "Error_NotFound": NotFound,
    "Error_AccessDenied": AccessDenied,
    "Error_AlreadyExists": AlreadyExists,
    "Error_InvalidArgument": InvalidArgument,
    "Error_TooLarge": TooLarge,
    "Error_NoSpace": NoSpace,
    "Error_Unavailable": Unavailable,
    "Error_Io": IoError,
    "Error_CallFailed": CallFailed,
}


def from_wit(value: Any) -> Error:
    """The exception for one value of the WIT `error` variant."""
    case = type(value).__name__
    if case == "Error_Busy":
        return Busy(list(value.value))
    if case == "Error_PreconditionFailed":
        return PreconditionFailed()
    cls = _BY_CASE.get(case)
    if cls is None:
        return Error(f"unknown error case {case}: {value!r}")
    return cls(str(value.value))


R = TypeVar("R")


def wit_call(fn: Callable[..., R], *args: Any) -> R:
    """Calls a generated binding, turning its `Err` into a vessel exception."""
    from componentize_py_types import Err

    try:
        return fn(*args)
    except Err as e:
        raise from_wit(e.value) from None
