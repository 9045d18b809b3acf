"""Calling other functions of the same app, each in its own container, as
Modal's `f.remote()`, `f.spawn()` and `f.map()` do.

Arguments go as JSON: positional arguments as an array, keyword arguments
as an object keyed by WIT parameter name (not both in one call). Results
come back decoded from JSON.
"""

from __future__ import annotations

import builtins
import functools
import json
import os
import traceback
from types import ModuleType
from typing import Any, Callable, Iterable, List, TypeVar

from . import _bindings
from .errors import CallFailed, CodecError, RemoteError, wit_call

__all__ = ["remote", "spawn", "map", "starmap", "FunctionCall"]


def _args_json(function: str, args: Any, kwargs: Any) -> str:
    if args and kwargs:
        raise TypeError(
            f"calling {function!r}: pass arguments either by position or by "
            "name, not both (they travel as one JSON array or object)"
        )
    try:
        return json.dumps(kwargs if kwargs else list(args), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CodecError(f"the arguments of {function!r} are not JSON: {e}") from None


def _decode(function: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise CodecError(f"the result of {function!r} is not JSON: {e}") from None


R = TypeVar("R")


def _rebuilt(err: CallFailed, failure: Any) -> BaseException:
    """The exception to raise for a callee that raised `failure`: a builtin
    type as itself, anything else as `RemoteError`."""
    remote = RemoteError(err.detail, failure.type_name, failure.message, failure.traceback)
    cls = getattr(builtins, failure.type_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        return remote
    message = failure.message
    if cls is KeyError and len(message) >= 2 and message[0] == message[-1] and message[0] in "'\"":
        # str(KeyError('k')) is "'k'": rebuild KeyError('k'), not KeyError("'k'").
        message = message[1:-1]
    try:
        exc = cls(message)
    except Exception:
        return remote
    exc.remote = remote  # type: ignore[attr-defined]
    if hasattr(exc, "add_note"):
        exc.add_note(f"raised in the called function; its traceback:\n{failure.traceback.rstrip()}")
    return exc


def _call(fn: Callable[..., R], *args: Any) -> R:
    """`wit_call` of a call binding, raising what the callee raised when it
    reported an exception."""
    try:
        return wit_call(fn, *args)
    except CallFailed as err:
        failure = _bindings.interface("functions").last_failure()
        if failure is None:
            raise
        raise _rebuilt(err, failure) from None


def _type_name(t: type) -> str:
    if t.__module__ in ("builtins", "__main__"):
        return t.__qualname__
    return f"{t.__module__}.{t.__qualname__}"


def _fail(e: BaseException) -> None:
    """Ends the current call with `e` (`functions.fail`): the caller gets
    its type, message and traceback. Does not return."""
    wit = _bindings.interface("functions")
    tb = e.__traceback__
    # The export wrapper's own frame is not the app's.
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    # The SDK's own frames (`remote` re-raising a callee's error, say) say
    # nothing about the app: leave them out.
    sdk = os.path.dirname(os.path.abspath(__file__)) + os.sep
    lines = traceback.format_exception(type(e), e, tb)
    text = "".join(line for line in lines if not line.startswith(f'  File "{sdk}'))
    wit.fail(wit.Failure(type_name=_type_name(type(e)), message=str(e), traceback=text))


def _wrapped(fn: Callable[..., R]) -> Callable[..., R]:
    @functools.wraps(fn)
    def export(*args: Any, **kwargs: Any) -> R:
        try:
            return fn(*args, **kwargs)
        except BaseException as e:  # noqa: B902 - every uncaught error ends the call
            _fail(e)
            raise

    return export


def _wrap_exports(module: ModuleType) -> None:
    """Wraps the export methods of `module`'s classes that implement the
    world (`WitWorld`) or an exported interface, so an exception they do
    not catch reaches the caller as data. The build calls this once, after
    the app's module ran. A world without vessel's imports keeps
    componentize-py's own handling."""
    try:
        _bindings.interface("functions")
    except ImportError:
        return
    for cls in list(vars(module).values()):
        if not isinstance(cls, type):
            continue
        if not any(getattr(b, "__module__", "").startswith("wit_world") for b in cls.__mro__[1:]):
            continue
        for name, attr in list(vars(cls).items()):
            if not name.startswith("_") and callable(attr) and not isinstance(attr, type):
                setattr(cls, name, _wrapped(attr))


class FunctionCall:
    """A call started by `spawn`; `get()` waits for its result."""

    def __init__(self, function: str, handle: Any) -> None:
        self._function = function
        self._handle = handle

    def get(self) -> Any:
        """Waits for the call and returns its result. Raises `CallFailed`
        when the callee trapped or timed out; re-raises what it raised
        (see `remote`). Asking again gives the same outcome."""
        return _decode(self._function, _call(self._handle.get))

    def __repr__(self) -> str:
        return f"<vessel.FunctionCall {self._function!r}>"


def remote(function: str, *args: Any, **kwargs: Any) -> Any:
    """Runs `function` of this app in its own container and returns its
    result. Raises `NotFound` for an unknown function and `CallFailed` when
    it traps or times out. An exception it raises is raised here: a
    builtin type as itself (`ValueError("boom")`, with the callee's
    traceback as a note), any other as `RemoteError` with its `.type`,
    `.message` and `.traceback`."""
    wit = _bindings.interface("functions")
    return _decode(function, _call(wit.remote, function, _args_json(function, args, kwargs)))


def spawn(function: str, *args: Any, **kwargs: Any) -> FunctionCall:
    """Starts `function` in the background; `.get()` on the handle waits."""
    wit = _bindings.interface("functions")
    handle = wit_call(wit.spawn, function, _args_json(function, args, kwargs))
    return FunctionCall(function, handle)


def starmap(function: str, inputs: Iterable[Iterable[Any]]) -> List[Any]:
    """Like `map`, but each input is a whole list of positional arguments."""
    # Start every call before waiting for any, so they run together.
    calls = [spawn(function, *args) for args in inputs]
    return [c.get() for c in calls]


def map(function: str, *input_iterators: Iterable[Any]) -> List[Any]:
    """Calls `function` once per input, all at once, each in its own
    container, and returns the results in input order. Several iterables
    give several arguments, zipped, as with the builtin `map`."""
    if not input_iterators:
        raise TypeError("map() needs at least one iterable of inputs")
    return starmap(function, zip(*input_iterators))
