"""Dicts: persistent maps from string keys to values, used like Python dicts.

The same API as the guest SDK's `vessel.Dict`, over the HTTP API. Values are
stored as compact UTF-8 JSON (what guests, the Rust SDK and `vessel dict`
read back as JSON); `Dict.from_name(..., raw=True)` (or `d.raw`) stores
bytes as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from ._client import Client, quote
from .errors import AlreadyExists, Busy, CodecError, NotFound, PreconditionFailed

__all__ = ["Dict", "Lease", "Versioned"]

_MISSING: Any = object()

# Entries per page when iterating (the server's most is 10,000).
_PAGE = 1000


@dataclass(frozen=True)
class Versioned:
    """A value with the version compare-and-swap compares."""

    value: Any
    version: int


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
        raise CodecError(f"the value at {key!r} is not JSON ({e}); read it with raw=True") from None


def _encode_raw(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a raw dict stores bytes, not {type(value).__name__}")


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"dict keys are str, not {type(key).__name__}")
    return key


def _is_missing_key(e: NotFound) -> bool:
    # The server's 404 for a key (rather than for the dict) says "key `k`
    # is not in dict `d`".
    return "is not in dict" in e.detail


def _version_of(headers: Mapping[str, str]) -> int:
    tag = headers.get("etag", "").strip('"')
    return int(tag) if tag.isdigit() else 0


class Lease:
    """A lock on one key (see `Dict.lock`). As a context manager it is
    released on exit."""

    def __init__(self, d: "Dict", key: str, token: int, expires_at_ms: int) -> None:
        self._dict = d
        self._key = key
        self._token = token
        #: When the lease ends unless renewed (ms since the Unix epoch).
        self.expires_at_ms = expires_at_ms

    @property
    def key(self) -> str:
        return self._key

    @property
    def token(self) -> int:
        """The fencing token: larger for every later lease on the key."""
        return self._token

    def renew(self, ttl_ms: int) -> None:
        """Extends the lease to `ttl_ms` from now; raises
        `PreconditionFailed` when it expired and someone else took it."""
        got = self._dict._post(
            "renew", self._key, query={"token": self._token, "ttl_ms": ttl_ms}
        ).json()
        self.expires_at_ms = got["expires_at_ms"]

    def release(self) -> None:
        """Gives the lock up (releasing an expired lease is not an error)."""
        self._dict._post("release", self._key, query={"token": self._token})

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

    def __init__(self, name: str, raw: bool = False, *, client: Optional[Client] = None) -> None:
        self._name = name
        self._raw = raw
        self._client = client or Client.default()
        self._base = f"/v1/dicts/{quote(name)}"

    @classmethod
    def from_name(
        cls,
        name: str,
        create_if_missing: bool = False,
        *,
        raw: bool = False,
        client: Optional[Client] = None,
    ) -> "Dict":
        """Opens the dict called `name`, creating it first if
        `create_if_missing`. Raises `NotFound` when it does not exist and
        `AccessDenied` when the token may not read it. With `raw=True`
        values are bytes, stored as they are."""
        d = cls(name, raw, client=client)
        if create_if_missing:
            try:
                d._client.request("POST", d._base)
            except AlreadyExists:
                pass
        else:
            d._client.request("GET", d._base)
        return d

    @staticmethod
    def delete(name: str, *, client: Optional[Client] = None) -> None:
        """Deletes the dict called `name` and every entry in it."""
        (client or Client.default()).request("DELETE", f"/v1/dicts/{quote(name)}")

    @property
    def name(self) -> str:
        return self._name

    @property
    def raw(self) -> "Dict":
        """This dict with values as bytes, stored as they are."""
        return Dict(self._name, raw=True, client=self._client)

    def __repr__(self) -> str:
        return f"<vessel.Dict {self._name!r}{' raw' if self._raw else ''}>"

    # -- encoding --------------------------------------------------------

    def _encode(self, value: Any) -> bytes:
        return _encode_raw(value) if self._raw else _encode_json(value)

    def _decode(self, data: bytes, key: str) -> Any:
        return bytes(data) if self._raw else _decode_json(data, key)

    def _key_path(self, key: str) -> str:
        return f"{self._base}/keys/{quote(_check_key(key))}"

    def _post(self, action: str, key: str, query: Optional[Mapping[str, Any]] = None):
        return self._client.request("POST", f"{self._key_path(key)}/{action}", query=query)

    # -- single keys -----------------------------------------------------

    def _get_raw(self, key: str) -> Optional[Tuple[bytes, int]]:
        try:
            r = self._client.request(
                "GET", self._key_path(key), headers={"Accept": "application/octet-stream"}
            )
        except NotFound as e:
            if _is_missing_key(e):
                return None
            raise
        return r.content, _version_of(r.headers)

    def __getitem__(self, key: str) -> Any:
        got = self._get_raw(key)
        if got is None:
            raise KeyError(key)
        return self._decode(got[0], key)

    def get(self, key: str, default: Any = None) -> Any:
        """The value at `key`, or `default` when it is missing."""
        got = self._get_raw(key)
        return default if got is None else self._decode(got[0], key)

    def get_versioned(self, key: str) -> Optional[Versioned]:
        """The value at `key` with its version (for `put(if_version=...)`),
        or None."""
        got = self._get_raw(key)
        return None if got is None else Versioned(self._decode(got[0], key), got[1])

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
        ttl: Optional[float] = None,
    ) -> bool:
        """Stores `value` at `key` and returns whether it wrote.

        `if_absent=True` (or Modal's `skip_if_exists=True`) writes only
        when the key is absent: False then means someone else holds it.
        `if_version` writes only when the key's version is that one, else
        raises `PreconditionFailed` (with `.current_version`). `ttl` makes
        the entry expire that many seconds after the write.
        """
        absent = if_absent or skip_if_exists
        headers = {"Content-Type": "application/octet-stream"}
        if absent:
            headers["If-None-Match"] = "*"
        if if_version is not None:
            headers["If-Match"] = f'"{int(if_version)}"'
        query = None
        if ttl is not None:
            query = {"ttl_ms": max(1, int(round(ttl * 1000)))}
        try:
            self._client.request(
                "PUT", self._key_path(key), body=self._encode(value), headers=headers, query=query
            )
        except PreconditionFailed:
            if absent and if_version is None:
                return False
            raise
        return True

    def __delitem__(self, key: str) -> None:
        try:
            self._client.request("DELETE", self._key_path(key))
        except NotFound as e:
            if _is_missing_key(e):
                raise KeyError(key) from None
            raise

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Removes `key` and returns its value; `default` when it is
        missing, or KeyError without one."""
        try:
            r = self._client.request(
                "POST", f"{self._key_path(key)}/pop", headers={"Accept": "application/octet-stream"}
            )
        except NotFound as e:
            if not _is_missing_key(e):
                raise
            if default is _MISSING:
                raise KeyError(key) from None
            return default
        return self._decode(r.content, key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        r = self._client.request("HEAD", self._key_path(key), ok=(404,))
        if r.status == 404:
            # HEAD has no body to say whether the dict or the key is missing.
            self._client.request("GET", self._base)
            return False
        return True

    def contains(self, key: str) -> bool:
        return key in self

    def __len__(self) -> int:
        """The exact number of entries."""
        return int(self._client.request("GET", self._base).json()["len"])

    def len(self) -> int:
        return len(self)

    def increment(self, key: str, delta: int = 1) -> int:
        """Adds `delta` to the counter at `key` (absent counts as 0) and
        returns the new value. Counters are stored as decimal text, so they
        also read as JSON numbers."""
        return int(self._post("increment", key, query={"by": int(delta)}).json()["value"])

    def lock(self, key: str, ttl_ms: int = 30_000) -> Optional[Lease]:
        """Takes the lock on `key` for `ttl_ms`, or returns None while
        another live lease holds it."""
        try:
            got = self._post("lock", key, query={"ttl_ms": ttl_ms}).json()
        except Busy:
            return None
        return Lease(self, key, int(got["token"]), int(got["expires_at_ms"]))

    # -- many keys -------------------------------------------------------

    def update(
        self,
        other: Union[Mapping[str, Any], Iterable[Tuple[str, Any]]] = (),
        **kwargs: Any,
    ) -> None:
        """Writes every pair at once, atomically (all land or none; at most
        10,000 pairs, else `TooLarge`)."""
        pairs = list(other.items() if isinstance(other, Mapping) else other)
        pairs += list(kwargs.items())
        if self._raw:
            body = {"entries_hex": {_check_key(k): _encode_raw(v).hex() for k, v in pairs}}
        else:
            entries = {}
            for k, v in pairs:
                _encode_json(v)  # the guest SDK's error for what JSON cannot hold
                entries[_check_key(k)] = v
            body = {"entries": entries}
        self._client.request("POST", f"{self._base}/update", json_body=body)

    def get_many(self, keys: Iterable[str], default: Any = None) -> List[Any]:
        """The values of `keys`, in order; `default` for missing ones."""
        keys = [_check_key(k) for k in keys]
        if self._raw:
            return [self.get(k, default) for k in keys]
        got = self._client.request("POST", f"{self._base}/get-many", json_body={"keys": keys}).json()
        return [default if item is None else self._item_value(item) for item in got["items"]]

    def clear(self) -> None:
        """Removes every entry."""
        self._client.request("POST", f"{self._base}/clear")

    def _item_value(self, item: Mapping[str, Any]) -> Any:
        """The value of one listed entry, fetched by key when the listing
        left it out (over 1 MiB) or gave it decoded where bytes are wanted."""
        key = item["key"]
        if item.get("omitted") or (self._raw and "value_hex" not in item):
            got = self._get_raw(key)
            if got is None:
                raise KeyError(key)
            return self._decode(got[0], key)
        if "value_hex" in item:
            return self._decode(bytes.fromhex(item["value_hex"]), key)
        return item.get("value")

    def _pages(self, prefix: str) -> Iterator[Mapping[str, Any]]:
        cursor: Optional[str] = None
        while True:
            page = self._client.request(
                "GET",
                f"{self._base}/items",
                query={"prefix": prefix or None, "cursor": cursor, "limit": _PAGE},
            ).json()
            yield from page["items"]
            cursor = page.get("next")
            if not page.get("more") or cursor is None:
                return

    def keys(self, prefix: str = "") -> Iterator[str]:
        """The keys (starting with `prefix`), in key order, a page at a time."""
        for item in self._pages(prefix):
            yield item["key"]

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def values(self, prefix: str = "") -> Iterator[Any]:
        for item in self._pages(prefix):
            try:
                yield self._item_value(item)
            except KeyError:
                continue  # removed since the page was read

    def items(self, prefix: str = "") -> Iterator[Tuple[str, Any]]:
        """(key, value) pairs in key order, a page at a time. Keys written
        while iterating may or may not show up; a key present throughout
        shows up exactly once."""
        for item in self._pages(prefix):
            try:
                yield item["key"], self._item_value(item)
            except KeyError:
                continue
