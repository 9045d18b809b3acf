"""Run an app's functions on an ordinary Python, without wasm: for pytest.

    import app                      # a one-file app (@vessel.function)
    from vessel import testing

    def test_add(tmp_path):
        with testing.local(tmp_path) as env:
            assert app.add(app.Note("milk", ["shop"])) == 1
            assert env.dict("counts")["notes"] == 1
            assert vessel.remote("stats") == [["notes", 1]]

Inside `local()`, the `vessel` package works as in a guest, on stand-ins
for the host that keep everything under one folder:

- `Dict`: an in-memory dict per name, with the guest's JSON encoding,
  versions, `put` conditions, counters and locks;
- `Volume`: a folder per volume name, with versions counted by `commit()`
  (`history()` lists them); a volume a decorated function mounts
  (`mounts={"/data": "notes"}`) is reachable at its guest path: `open`,
  `os` and `pathlib` calls under `/data` go to that folder;
- `remote`, `spawn`, `map`: call the decorated function in this process,
  with arguments and results through JSON as between containers; what it
  raises is raised in the caller as vessel raises it (a builtin type as
  itself, others as `RemoteError`).

Not emulated: isolation between containers (every call sees every write
at once, so `reload()` has nothing to do), limits and timeouts, `diff`,
`fork`, kept versions (`Volume.from_name(name, version=N)`) and conflicts;
they raise `NotImplementedError` naming the call.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import enum
import io
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import types
import typing
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

__all__ = ["local", "Env"]


# -- the WIT error variant and `Err`, as componentize-py generates them ----


class Err(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value


def _case(name: str) -> type:
    return dataclasses.make_dataclass(f"Error_{name}", [("value", Any, dataclasses.field(default=None))])


_E = {n: _case(n) for n in ("NotFound", "AccessDenied", "AlreadyExists", "InvalidArgument",
                            "TooLarge", "Busy", "NoSpace", "PreconditionFailed", "Unavailable",
                            "Io", "CallFailed")}


def _err(case: str, detail: Any = None) -> Err:
    return Err(_E[case](detail))


def _unsupported(what: str) -> NotImplementedError:
    return NotImplementedError(f"vessel.testing does not emulate {what}; test it under `vessel run`")


# -- dicts -------------------------------------------------------------------


@dataclasses.dataclass
class _Entry:
    value: bytes
    version: int


@dataclasses.dataclass
class PutOptions:
    if_absent: bool = False
    if_version: Optional[int] = None
    ttl_seconds: Optional[int] = None


@dataclasses.dataclass
class _Item:
    key: str
    value: Optional[bytes]
    version: int


@dataclasses.dataclass
class _Page:
    items: List[_Item]
    cursor: Optional[str]


@dataclasses.dataclass
class _Limits:
    max_key_bytes: int = 4096
    max_value_bytes: int = 16 << 20
    max_update_entries: int = 10_000
    max_scan_limit: int = 1000
    idle_expiry_seconds: int = 7 * 24 * 3600


class _Lease:
    def __init__(self, store: "_DictStore", key: str, token: int) -> None:
        self._store, self._key, self._token = store, key, token

    def key(self) -> str:
        return self._key

    def token(self) -> int:
        return self._token

    def renew(self, ttl_ms: int) -> None:
        if self._store.locks.get(self._key) != self._token:
            raise _err("PreconditionFailed")

    def release(self) -> None:
        if self._store.locks.get(self._key) != self._token:
            raise _err("PreconditionFailed")
        del self._store.locks[self._key]


class _DictStore:
    def __init__(self, name: str) -> None:
        self.name = name
        self.entries: Dict[str, _Entry] = {}
        self.version = 0
        self.locks: Dict[str, int] = {}

    def bump(self) -> int:
        self.version += 1
        return self.version


class _Dict:
    """`wit_world.imports.dict.Dict`."""

    def __init__(self, store: _DictStore) -> None:
        self._s = store

    @staticmethod
    def open(name: str, create_if_missing: bool) -> "_Dict":
        env = Env.current()
        store = env._dicts.get(name)
        if store is None:
            # What the decorators name exists, as the manifest the build
            # derives from them creates it.
            if not create_if_missing and name not in env._declared("dicts"):
                raise _err("NotFound", f"dict `{name}` does not exist")
            store = env._dicts[name] = _DictStore(name)
        return _Dict(store)

    def name(self) -> str:
        return self._s.name

    def get(self, key: str) -> Optional[_Entry]:
        return self._s.entries.get(key)

    def put(self, key: str, value: bytes, options: PutOptions) -> Optional[int]:
        old = self._s.entries.get(key)
        if options.if_absent and old is not None:
            return None
        if options.if_version is not None and (old is None or old.version != options.if_version):
            raise _err("PreconditionFailed")
        v = self._s.bump()
        self._s.entries[key] = _Entry(bytes(value), v)
        return v

    def pop(self, key: str) -> Optional[_Entry]:
        return self._s.entries.pop(key, None)

    def contains(self, key: str) -> bool:
        return key in self._s.entries

    def len(self) -> int:
        return len(self._s.entries)

    def update(self, entries: List[Tuple[str, bytes]]) -> None:
        for k, v in entries:
            self._s.entries[k] = _Entry(bytes(v), self._s.bump())

    def get_many(self, keys: List[str]) -> List[Optional[_Entry]]:
        return [self._s.entries.get(k) for k in keys]

    def scan(self, prefix: str, cursor: Optional[str], limit: int, with_values: bool) -> _Page:
        keys = sorted(k for k in self._s.entries if k.startswith(prefix) and (cursor is None or k > cursor))
        page = keys[: max(1, limit)]
        items = [
            _Item(k, self._s.entries[k].value if with_values else None, self._s.entries[k].version)
            for k in page
        ]
        return _Page(items, page[-1] if len(keys) > len(page) else None)

    def clear(self) -> None:
        self._s.entries.clear()

    def increment(self, key: str, delta: int) -> int:
        old = self._s.entries.get(key)
        try:
            n = int(old.value.decode()) if old is not None else 0
        except ValueError:
            raise _err("InvalidArgument", f"`{key}` does not hold a counter") from None
        n += delta
        self._s.entries[key] = _Entry(str(n).encode(), self._s.bump())
        return n

    def lock(self, key: str, ttl_ms: int) -> Optional[_Lease]:
        if key in self._s.locks:
            return None
        token = self._s.bump()
        self._s.locks[key] = token
        return _Lease(self._s, key, token)

    def limits(self) -> _Limits:
        return _Limits()


# -- volumes -----------------------------------------------------------------


class EntryKind(enum.Enum):
    FILE = 0
    DIRECTORY = 1
    SYMLINK = 2


class ConflictPolicy(enum.Enum):
    LAST_WRITER_WINS = 0
    FAIL = 1


@dataclasses.dataclass
class _FileEntry:
    path: str
    kind: EntryKind
    size: int
    mtime: int


@dataclasses.dataclass
class _CommitInfo:
    version: int
    changed: int
    removed: int


@dataclasses.dataclass
class _VersionInfo:
    version: int
    time_ms: int
    changed: int
    removed: int
    bytes_added: int


@dataclasses.dataclass
class _History:
    head: int
    oldest: int
    retention_ms: int
    versions: List[_VersionInfo]


@dataclasses.dataclass
class CommitOutcome_Committed:
    value: _CommitInfo


class _VolumeStore:
    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.versions: List[_VersionInfo] = []
        self.committed = self._state()

    def _state(self) -> List[Tuple[str, int, int]]:
        return sorted(
            (p.relative_to(self.root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in self.root.rglob("*")
        )

    def commit(self) -> _CommitInfo:
        """A new version when the folder changed since the last one, as a
        commit with nothing to publish makes none."""
        state = self._state()
        if state == self.committed:
            return _CommitInfo(len(self.versions), 0, 0)
        self.committed = state
        v = len(self.versions) + 1
        self.versions.append(_VersionInfo(v, int(time.time() * 1000), 0, 0, 0))
        return _CommitInfo(v, 0, 0)


class _Volume:
    """`wit_world.imports.volume.Volume`."""

    def __init__(self, store: _VolumeStore) -> None:
        self._s = store

    @staticmethod
    def mounted(path: str) -> "_Volume":
        env = Env.current()
        name = env._mounts().get(path.rstrip("/") or "/")
        if name is None:
            raise _err("NotFound", f"no volume is mounted at {path}")
        return _Volume(env._volume(name, True))

    @staticmethod
    def from_name(name: str, create_if_missing: bool) -> "_Volume":
        return _Volume(Env.current()._volume(name, create_if_missing))

    @staticmethod
    def at_version(name: str, version: int) -> "_Volume":
        raise _unsupported("kept versions (Volume.from_name(name, version=N))")

    def _path(self, path: str) -> Path:
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise _err("InvalidArgument", f"{path}: `..` is not allowed")
        return self._s.root.joinpath(*parts)

    def name(self) -> str:
        return self._s.name

    def version(self) -> int:
        return len(self._s.versions)

    def commit(self) -> _CommitInfo:
        return self._s.commit()

    def commit_with(self, conflicts: ConflictPolicy) -> CommitOutcome_Committed:
        return CommitOutcome_Committed(self._s.commit())

    def reload(self) -> int:
        return len(self._s.versions)

    def listdir(self, path: str, recursive: bool) -> List[_FileEntry]:
        base = self._path(path)
        if not base.exists():
            raise _err("NotFound", f"{path} does not exist")
        found = base.rglob("*") if recursive else base.iterdir()
        out = []
        for p in sorted(found):
            st = p.lstat()
            kind = EntryKind.DIRECTORY if p.is_dir() else EntryKind.FILE
            rel = p.relative_to(self._s.root).as_posix()
            out.append(_FileEntry(rel, kind, 0 if kind is EntryKind.DIRECTORY else st.st_size, int(st.st_mtime)))
        return out

    def read_file(self, path: str, offset: int, length: int) -> bytes:
        p = self._path(path)
        if not p.is_file():
            raise _err("NotFound", f"{path} in volume `{self._s.name}`")
        with p.open("rb") as f:
            f.seek(offset)
            return f.read(length)

    def write_file(self, path: str, data: bytes, overwrite: bool) -> None:
        p = self._path(path)
        if p.exists() and not overwrite:
            raise _err("AlreadyExists", f"{path} exists (pass overwrite to replace it)")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(bytes(data))
        self._s.commit()

    def remove(self, path: str, recursive: bool) -> None:
        p = self._path(path)
        if not p.exists():
            raise _err("NotFound", f"{path} does not exist")
        if p.is_dir():
            if any(p.iterdir()) and not recursive:
                raise _err("InvalidArgument", f"{path} is a non-empty directory (remove it recursively)")
            shutil.rmtree(p)
        else:
            p.unlink()
        self._s.commit()

    def copy(self, srcs: List[str], dst: str) -> None:
        target = self._path(dst)
        for src in srcs:
            s = self._path(src)
            if not s.exists():
                raise _err("NotFound", f"{src} does not exist")
            into = target / s.name if len(srcs) > 1 or dst.endswith("/") else target
            into.parent.mkdir(parents=True, exist_ok=True)
            if s.is_dir():
                shutil.copytree(s, into, dirs_exist_ok=True)
            else:
                shutil.copyfile(s, into)
        self._s.commit()

    def history(self, limit: int) -> _History:
        vs = list(reversed(self._s.versions))[: max(1, limit)]
        head = len(self._s.versions)
        return _History(head, 1 if head else 0, 7 * 24 * 3600 * 1000, vs)

    def diff(self, since: int, until: Optional[int]) -> Any:
        raise _unsupported("Volume.diff")

    def fork(self, name: str) -> Any:
        raise _unsupported("Volume.fork")


# -- calls -------------------------------------------------------------------


@dataclasses.dataclass
class Failure:
    type_name: str
    message: str
    traceback: str


def _snake(name: str) -> str:
    return name.replace("-", "_")


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _from_json(hint: Any, value: Any) -> Any:
    """A JSON value as the hinted type, as the generated exports convert
    WIT values (records by WIT field name, a dict as pairs)."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        hints = typing.get_type_hints(hint)
        return hint(**{_snake(k): _from_json(hints.get(_snake(k)), v) for k, v in value.items()})
    if origin in (list, List) and args:
        return [_from_json(args[0], x) for x in value]
    if origin in (dict, Dict) and len(args) == 2:
        pairs = value.items() if isinstance(value, dict) else value
        return {k: _from_json(args[1], x) for k, x in pairs}
    if origin in (tuple, Tuple) and args:
        return tuple(_from_json(a, x) for a, x in zip(args, value))
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _from_json(inner[0], value) if len(inner) == 1 else value
    if hint is bytes and isinstance(value, list):
        return bytes(value)
    return value


def _to_json(value: Any) -> Any:
    """A result as vessel gives it to callers: records keyed by WIT field
    name, a dict as a list of pairs, bytes as a list of numbers."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_kebab(f.name): _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return [[k, _to_json(v)] for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [_to_json(x) for x in value]
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    return value


class _Call:
    def __init__(self, outcome: Tuple[Optional[str], Optional[Tuple[Err, Failure]]]) -> None:
        self._outcome = outcome

    def get(self) -> str:
        return Env.current()._deliver(self._outcome)


def _run(function: str, args_json: str) -> Tuple[Optional[str], Optional[Tuple[Err, Failure]]]:
    from . import _app

    fn = _app.FUNCTIONS.get(_snake(function))
    if fn is None:
        raise _err(
            "NotFound",
            f"app has no function `{function}`; it has: "
            + ", ".join(sorted(_kebab(n) for n in _app.FUNCTIONS)),
        )
    try:
        args = json.loads(args_json)
    except ValueError as e:
        raise _err("InvalidArgument", f"arguments for `{function}` are not JSON: {e}") from None
    hints = typing.get_type_hints(fn)
    names = list(fn.__code__.co_varnames[: fn.__code__.co_argcount])
    if isinstance(args, list):
        kwargs = dict(zip(names, args))
    else:
        kwargs = {_snake(k): v for k, v in args.items()}
    kwargs = {k: _from_json(hints.get(k), v) for k, v in kwargs.items()}
    try:
        result = fn(**kwargs)
    except BaseException as e:
        t = type(e)
        type_name = t.__qualname__ if t.__module__ in ("builtins", "__main__") else f"{t.__module__}.{t.__qualname__}"
        failure = Failure(type_name, str(e), "".join(traceback.format_exception(t, e, e.__traceback__)))
        return None, (_err("CallFailed", f"function `{_kebab(function)}`: raised {type_name}: {e}"), failure)
    return json.dumps(_to_json(result)), None


class _Functions(types.ModuleType):
    """`wit_world.imports.functions`."""

    Failure = Failure

    def remote(self, function: str, args_json: str) -> str:
        return Env.current()._deliver(_run(function, args_json))

    def spawn(self, function: str, args_json: str) -> _Call:
        return _Call(_run(function, args_json))

    def last_failure(self) -> Optional[Failure]:
        return Env.current()._last_failure

    def fail(self, raised: Failure) -> None:
        raise _unsupported("functions.fail (the build's export wrapper calls it)")


# -- the environment ---------------------------------------------------------


class Env:
    """What `local()` yields: the stand-in host. `dict(name)` and
    `volume(name)` open what the app stored, for assertions."""

    _active: List["Env"] = []

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dicts: Dict[str, _DictStore] = {}
        self._volumes: Dict[str, _VolumeStore] = {}
        self._last_failure: Optional[Failure] = None

    @classmethod
    def current(cls) -> "Env":
        if not cls._active:
            raise RuntimeError("vessel calls on the host need `with vessel.testing.local():`")
        return cls._active[-1]

    def dict(self, name: str) -> Any:
        from . import Dict as SdkDict

        return SdkDict.from_name(name, create_if_missing=True)

    def volume(self, name: str) -> Any:
        from . import Volume as SdkVolume

        return SdkVolume.from_name(name, create_if_missing=True)

    def _volume(self, name: str, create_if_missing: bool) -> _VolumeStore:
        store = self._volumes.get(name)
        if store is None:
            if not create_if_missing and name not in self._declared("volumes"):
                raise _err("NotFound", f"volume `{name}` does not exist")
            store = self._volumes[name] = _VolumeStore(name, self.root / "volumes" / name)
        return store

    def _declared(self, what: str) -> set:
        from . import _app

        names: set = set()
        for fn in _app.FUNCTIONS.values():
            options = getattr(fn, "__vessel_function__", {})
            names |= set(options.get(what, []))
            if what == "volumes":
                names |= set(options.get("mounts", {}).values())
        return names

    def _mounts(self) -> Dict[str, str]:
        from . import _app

        mounts: Dict[str, str] = {}
        for fn in _app.FUNCTIONS.values():
            for path, name in getattr(fn, "__vessel_function__", {}).get("mounts", {}).items():
                mounts.setdefault(path.rstrip("/") or "/", name)
        return mounts

    def _deliver(self, outcome: Tuple[Optional[str], Optional[Tuple[Err, Failure]]]) -> str:
        result, failed = outcome
        if failed is not None:
            self._last_failure = failed[1]
            raise failed[0]
        self._last_failure = None
        assert result is not None
        return result

    def _host_path(self, path: Any) -> Any:
        """A guest path under a mount, as the folder that holds it here."""
        if isinstance(path, int) or not isinstance(path, (str, os.PathLike)):
            return path
        text = os.fspath(path)
        if isinstance(text, bytes) or not text.startswith("/"):
            return path
        for guest, name in self._mounts().items():
            if text == guest or text.startswith(guest + "/"):
                rest = text[len(guest):].lstrip("/")
                return str(self._volume(name, True).root / rest)
        return path


def _module(name: str, **attrs: Any) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    return m


@contextlib.contextmanager
def local(root: Optional[os.PathLike] = None) -> Iterator[Env]:
    """Runs the `vessel` package on host stand-ins kept under `root` (a
    new temporary folder when not given) for the `with` block."""
    own = None
    if root is None:
        own = tempfile.TemporaryDirectory(prefix="vessel-testing-")
        root = own.name
    env = Env(Path(root))
    functions = _Functions("wit_world.imports.functions")
    installed = {
        "componentize_py_types": _module("componentize_py_types", Err=Err),
        # An app written against its own world (`class WitWorld(wit_world.WitWorld)`)
        # imports too; its methods can then be called directly.
        "wit_world": _module("wit_world", WitWorld=type("WitWorld", (), {})),
        "wit_world.imports": _module("wit_world.imports"),
        "wit_world.imports.types": _module("wit_world.imports.types", **_E),
        "wit_world.imports.dict": _module(
            "wit_world.imports.dict", Dict=_Dict, PutOptions=PutOptions, Entry=_Entry
        ),
        "wit_world.imports.volume": _module(
            "wit_world.imports.volume",
            Volume=_Volume,
            ConflictPolicy=ConflictPolicy,
            EntryKind=EntryKind,
            CommitOutcome_Committed=CommitOutcome_Committed,
        ),
        "wit_world.imports.functions": functions,
    }
    saved = {name: sys.modules.get(name) for name in installed}
    sys.modules.update(installed)
    # Paths under a mount go to the volume's folder.
    patched: List[Tuple[Any, str, Any]] = []

    def patch(owner: Any, attr: str, arg: int = 0) -> None:
        original = getattr(owner, attr)

        def translated(*args: Any, **kwargs: Any) -> Any:
            if len(args) > arg:
                args = args[:arg] + (env._host_path(args[arg]),) + args[arg + 1:]
            return original(*args, **kwargs)

        patched.append((owner, attr, original))
        setattr(owner, attr, translated)

    for attr in ("open",):
        patch(builtins, attr)
        patch(io, attr)
    for attr in ("open", "stat", "lstat", "listdir", "scandir", "mkdir", "makedirs", "remove",
                 "unlink", "rmdir", "chmod", "utime", "truncate"):
        if hasattr(os, attr):
            patch(os, attr)
    for attr in ("rename", "replace"):
        patch(os, attr)
        original = getattr(os, attr)

        def both(src: Any, dst: Any, *args: Any, _f: Any = original, **kwargs: Any) -> Any:
            return _f(src, env._host_path(dst), *args, **kwargs)

        setattr(os, attr, both)
    Env._active.append(env)
    try:
        yield env
    finally:
        Env._active.pop()
        for owner, attr, original in reversed(patched):
            setattr(owner, attr, original)
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if own is not None:
            own.cleanup()
