"""Calling other functions of the same app, each in its own container, as
Modal's `f.remote()`, `f.spawn()` and `f.map()` do.

Arguments go as JSON: positional arguments as an array, keyword arguments
as an object keyed by WIT parameter name (not both in one call). Results
come back decoded from JSON.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, List

from . import _bindings
from .errors import CodecError, wit_call

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


class FunctionCall:
    """A call started by `spawn`; `get()` waits for its result."""

    def __init__(self, function: str, handle: Any) -> None:
        self._function = function
        self._handle = handle

    def get(self) -> Any:
        """Waits for the call and returns its result. Raises `CallFailed`
        when the callee trapped, timed out or raised; asking again gives
        the same outcome."""
        return _decode(self._function, wit_call(self._handle.get))

    def __repr__(self) -> str:
        return f"<vessel.FunctionCall {self._function!r}>"


def remote(function: str, *args: Any, **kwargs: Any) -> Any:
    """Runs `function` of this app in its own container and returns its
    result. Raises `NotFound` for an unknown function and `CallFailed` when
    it fails."""
    wit = _bindings.interface("functions")
    return _decode(function, wit_call(wit.remote, function, _args_json(function, args, kwargs)))


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
