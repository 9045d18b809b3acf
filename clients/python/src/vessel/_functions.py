"""Calling an app's functions from outside, as Modal's
`Function.from_name(app, name)` with `.remote()`, `.spawn()` and `.map()`.

Arguments go as JSON: positional arguments as an array, keyword arguments
as an object keyed by WIT parameter name (not both in one call). Results
come back decoded from JSON. Each call runs in its own container on the
server; `map` runs its inputs concurrently.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Iterable, Iterator, Optional

from ._client import Client, quote
from .errors import CallFailed, CodecError, Timeout, TooManyRequests, raised_error

__all__ = ["Function", "FunctionCall"]

# Calls in flight at once from one `map`.
_MAP_CONCURRENCY = 16


def _args(function: str, args: Any, kwargs: Any) -> Any:
    if args and kwargs:
        raise TypeError(
            f"calling {function!r}: pass arguments either by position or by "
            "name, not both (they travel as one JSON array or object)"
        )
    value = kwargs if kwargs else list(args)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CodecError(f"the arguments of {function!r} are not JSON: {e}") from None
    return value


class FunctionCall:
    """A call started by `Function.spawn`; `get()` waits for its result."""

    def __init__(self, call_id: str, *, client: Optional[Client] = None) -> None:
        self.object_id = call_id
        self._client = client or Client.default()

    @classmethod
    def from_id(cls, call_id: str, *, client: Optional[Client] = None) -> "FunctionCall":
        """The handle of a call spawned earlier (maybe by another process)."""
        return cls(call_id, client=client)

    def get(self, timeout: Optional[float] = None) -> Any:
        """Waits for the call (at most `timeout` seconds, else `Timeout`) and
        returns its result. Raises `CallFailed` when the callee trapped or
        timed out, and what it raised when it raised (as `remote` does);
        asking again gives the same outcome."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 30.0 if deadline is None else max(0.0, min(30.0, deadline - time.monotonic()))
            st = self._client.request(
                "GET", f"/v1/calls/{quote(self.object_id)}", query={"wait": wait}
            ).json()
            if st["status"] == "done":
                return st.get("result")
            if st["status"] == "failed":
                detail = st.get("error") or "the call failed"
                if isinstance(st.get("raised"), dict):
                    raise raised_error(detail, st["raised"])
                raise CallFailed(detail, kind="call_failed")
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(f"call {self.object_id} is still running after {timeout} s")

    def __repr__(self) -> str:
        return f"<vessel.FunctionCall {self.object_id}>"


class Function:
    """A function of an app that `vessel serve` runs."""

    def __init__(self, app: str, name: str, *, client: Optional[Client] = None) -> None:
        self.app = app
        self.name = name
        self._client = client or Client.default()
        self._path = f"/v1/apps/{quote(app)}/functions/{quote(name)}"

    @classmethod
    def from_name(cls, app: str, name: str, *, client: Optional[Client] = None) -> "Function":
        """The function `name` of app `app`. Nothing is checked until a
        call: an unknown app or function raises `NotFound` then."""
        return cls(app, name, client=client)

    def __repr__(self) -> str:
        return f"<vessel.Function {self.app}.{self.name}>"

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Runs the function and returns its result. Raises `NotFound` for
        an unknown function and `CallFailed` when it fails."""
        body = _args(self.name, args, kwargs)
        return self._client.request("POST", f"{self._path}/call", json_body=body).json()["result"]

    def spawn(self, *args: Any, **kwargs: Any) -> FunctionCall:
        """Starts the function in the background; `.get()` waits."""
        body = _args(self.name, args, kwargs)
        got = self._client.request("POST", f"{self._path}/spawn", json_body=body).json()
        return FunctionCall(got["call_id"], client=self._client)

    def _remote_retrying(self, args: Any) -> Any:
        # A token's budget of calls in flight answers 429 with Retry-After:
        # a map waits rather than failing the batch.
        while True:
            try:
                return self.remote(*args)
            except TooManyRequests as e:
                time.sleep(e.retry_after or 0.5)

    def starmap(self, inputs: Iterable[Iterable[Any]], *, order_outputs: bool = True) -> Iterator[Any]:
        """Like `map`, but each input is a whole list of positional
        arguments."""
        calls = [list(a) for a in inputs]
        with ThreadPoolExecutor(max_workers=max(1, min(_MAP_CONCURRENCY, len(calls)))) as pool:
            futures = [pool.submit(self._remote_retrying, a) for a in calls]
            if order_outputs:
                for f in futures:
                    yield f.result()
            else:
                for f in as_completed(futures):
                    yield f.result()

    def map(
        self, *input_iterators: Iterable[Any], order_outputs: bool = True
    ) -> Iterator[Any]:
        """Calls the function once per input, concurrently, and yields the
        results in input order (or as they finish, with
        `order_outputs=False`). As with the builtin `map` (and Modal's),
        several iterables give several arguments, zipped:
        `f.map([1, 2], [10, 20])` calls `f(1, 10)` and `f(2, 20)`."""
        if not input_iterators:
            raise TypeError("map() needs at least one iterable of inputs")
        return self.starmap(zip(*input_iterators), order_outputs=order_outputs)
