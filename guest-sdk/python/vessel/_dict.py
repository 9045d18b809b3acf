"""Dicts: persistent maps from string keys to values, used like Python dicts.

Values are stored as compact UTF-8 JSON, the encoding of the Rust SDK and of
`vessel dict get/put`, so what a Python guest writes reads well everywhere.
`Dict.from_name(..., raw=True)` (or `d.raw`) stores bytes as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import (
    Any,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
)

from . import _bindings
from .errors import CodecError, IoError, wit_call

__all__ = ["Dict", "Lease", "Versioned", "Limits"]

_MISSING: Any = object()

# Keys per scan page when iterating; the host clamps it to its own limit.
_PAGE = 1000


@dataclass(frozen=True)
class Versioned:
    """A value with the version compare-and-swap compares."""

    value: Any
    version: int


@dataclass(frozen=True)
class Limits:
    """The limits the host enforces."""

    max_key_bytes: int
    max_value_bytes: int
    max_update_entries: int
    max_scan_limit: int
    idle_expiry_seconds: int


def _encode_json(value: Any) -> bytes:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CodecError(f"cannot store {type(value).__name__} as JSON: {e}") from None
    return text.encode("utf-8")


def _decode_json(data: bytes, key: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CodecError(
            f"the value at {key!r} is not JSON ({e}); read it with raw=True"
        ) from None


def _encode_raw(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a raw dict stores bytes, not {type(value).__name__}")


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"dict keys are str, not {type(key).__name__}")
    return key


class Lease:
    """A lock on one key (see `Dict.lock`). As a context manager it is
    released on exit."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @property
    def key(self) -> str:
        return self._handle.key()

    @property
    def token(self) -> int:
        """The fencing token: larger for every later lease on the key."""
        return self._handle.token()

    def renew(self, ttl_ms: int) -> None:
        """Extends the lease to `ttl_ms` from now; raises
        `PreconditionFailed` when it expired and someone else took it."""
        wit_call(self._handle.renew, ttl_ms)

    def release(self) -> None:
        """Gives the lock up (releasing an expired lease is not an error)."""
        wit_call(self._handle.release)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<vessel.Lease {self.key!r} token={self.token}>"


class Dict:
    """A handle to one dict. Open it with `Dict.from_name`.

    It behaves like a Python dict whose keys are `str`: `d[k] = v`, `d[k]`
    (KeyError when missing), `d.get(k, default)`, `k in d`, `len(d)`,
    `del d[k]`, `d.pop(k[, default])`, `d.update(...)`, iteration over keys,
    and `keys()`, `values()`, `items()`, which page through the dict in key
    order. Every write is durable when the call returns.
    """

    def __init__(self, handle: Any, raw: bool = False) -> None:
        self._handle = handle
        self._raw = raw

    @classmethod
    def from_name(cls, name: str, create_if_missing: bool = False, *, raw: bool = False) -> "Dict":
        """Opens the dict called `name`, creating it first if
        `create_if_missing`. Raises `NotFound` when it does not exist and
        `AccessDenied` when the function's manifest does not grant it.
        With `raw=True` values are bytes, stored as they are."""
        wit = _bindings.interface("dict")
        return cls(wit_call(wit.Dict.open, name, create_if_missing), raw)

    @property
    def name(self) -> str:
        return self._handle.name()

    @property
    def raw(self) -> "Dict":
        """This dict with values as bytes, stored as they are."""
        return Dict(self._handle, raw=True)

    def __repr__(self) -> str:
        return f"<vessel.Dict {self.name!r}{' raw' if self._raw else ''}>"

    # -- encoding --------------------------------------------------------

    def _encode(self, value: Any) -> bytes:
        return _encode_raw(value) if self._raw else _encode_json(value)

    def _decode(self, data: bytes, key: str) -> Any:
        return bytes(data) if self._raw else _decode_json(data, key)

    # -- single keys -----------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        entry = wit_call(self._handle.get, _check_key(key))
        if entry is None:
            raise KeyError(key)
        return self._decode(entry.value, key)

    def get(self, key: str, default: Any = None) -> Any:
        """The value at `key`, or `default` when it is missing."""
        entry = wit_call(self._handle.get, _check_key(key))
        return default if entry is None else self._decode(entry.value, key)

    def get_versioned(self, key: str) -> Optional[Versioned]:
        """The value at `key` with its version (for `put(if_version=...)`),
        or None."""
        entry = wit_call(self._handle.get, _check_key(key))
        if entry is None:
            return None
        return Versioned(self._decode(entry.value, key), entry.version)

    def __setitem__(self, key: str, value: Any) -> None:
        self.put(key, value)

    def put(
        self,
        key: str,
        value: Any,
        *,
        if_absent: bool = False,
        skip_if_exists: bool = False,
        if_version: Optional[int] = None,
        ttl: Optional[int] = None,
    ) -> bool:
        """Stores `value` at `key` and returns whether it wrote.

        `if_absent=True` (or Modal's `skip_if_exists=True`) writes only
        when the key is absent (False then means someone else holds it:
        Modal's lock). `if_version` writes only when the key's version is
        that one, else raises `PreconditionFailed`. `ttl` makes the entry
        expire that many seconds after the write.
        """
        absent = if_absent or skip_if_exists
        wit = _bindings.interface("dict")
        options = wit.PutOptions(if_absent=absent, if_version=if_version, ttl_seconds=ttl)
        written = wit_call(self._handle.put, _check_key(key), self._encode(value), options)
        if written is None and not absent:
            raise IoError(f"put of {key!r} without skip_if_exists wrote nothing")
        return written is not None

    def __delitem__(self, key: str) -> None:
        if wit_call(self._handle.pop, _check_key(key)) is None:
            raise KeyError(key)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Removes `key` and returns its value; `default` when it is
        missing, or KeyError without one."""
        entry = wit_call(self._handle.pop, _check_key(key))
        if entry is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return self._decode(entry.value, key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return wit_call(self._handle.contains, key)

    def contains(self, key: str) -> bool:
        return key in self

    def __len__(self) -> int:
        """The exact number of entries."""
        return wit_call(self._handle.len)

    def len(self) -> int:
        return len(self)

    def increment(self, key: str, delta: int = 1) -> int:
        """Adds `delta` to the counter at `key` (absent counts as 0) and
        returns the new value. Counters are stored as decimal text, so they
        also read as JSON numbers."""
        return wit_call(self._handle.increment, _check_key(key), delta)

    def lock(self, key: str, ttl_ms: int = 30_000) -> Optional[Lease]:
        """Takes the lock on `key` for `ttl_ms`, or returns None while
        another live lease holds it."""
        handle = wit_call(self._handle.lock, _check_key(key), ttl_ms)
        return None if handle is None else Lease(handle)

    # -- many keys -------------------------------------------------------

    def update(
        self,
        other: Union[Mapping[str, Any], Iterable[Tuple[str, Any]]] = (),
        **kwargs: Any,
    ) -> None:
        """Writes every pair at once, atomically (all land or none; at most
        10,000 pairs, else `TooLarge`)."""
        pairs = other.items() if isinstance(other, Mapping) else other
        entries: List[Tuple[str, bytes]] = [
            (_check_key(k), self._encode(v)) for k, v in pairs
        ]
        entries += [(k, self._encode(v)) for k, v in kwargs.items()]
        wit_call(self._handle.update, entries)

    def get_many(self, keys: Iterable[str], default: Any = None) -> List[Any]:
        """The values of `keys`, in order; `default` for missing ones."""
        keys = [_check_key(k) for k in keys]
        entries = wit_call(self._handle.get_many, keys)
        return [
            default if e is None else self._decode(e.value, k)
            for k, e in zip(keys, entries)
        ]

    def clear(self) -> None:
        """Removes every entry."""
        wit_call(self._handle.clear)

    def _scan(self, prefix: str, with_values: bool) -> Iterator[Any]:
        cursor: Optional[str] = None
        while True:
            page = wit_call(self._handle.scan, prefix, cursor, _PAGE, with_values)
            yield from page.items
            if page.cursor is None:
                return
            cursor = page.cursor

    def keys(self, prefix: str = "") -> Iterator[str]:
        """The keys (starting with `prefix`), in key order, a page at a time."""
        for item in self._scan(prefix, False):
            yield item.key

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def values(self, prefix: str = "") -> Iterator[Any]:
        for item in self._scan(prefix, True):
            yield self._decode(item.value, item.key)

    def items(self, prefix: str = "") -> Iterator[Tuple[str, Any]]:
        """(key, value) pairs in key order, a page at a time. Keys written
        while iterating may or may not show up; a key present throughout
        shows up exactly once."""
        for item in self._scan(prefix, True):
            yield item.key, self._decode(item.value, item.key)

    def limits(self) -> Limits:
        l = self._handle.limits()
        return Limits(
            max_key_bytes=l.max_key_bytes,
            max_value_bytes=l.max_value_bytes,
            max_update_entries=l.max_update_entries,
            max_scan_limit=l.max_scan_limit,
            idle_expiry_seconds=l.idle_expiry_seconds,
        )
