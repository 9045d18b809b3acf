"""Volumes: named, versioned file trees, from outside a function.

The object methods of the guest SDK's `vessel.Volume` (`listdir`,
`iterdir`, `read_file`, `write_file`, `remove`, `copy`), over the HTTP API,
plus `batch_upload` for local files and directories. Each write through
this client is committed when it returns; functions see it from their next
start or `reload()`.

Every commit makes a version, kept for the volume's retention: `history`
lists them, `diff` compares two, `restore` brings one back, and
`Volume.from_name(name, version=V)` (or `"name@V"`) reads one.
"""

from __future__ import annotations

import datetime
import enum
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ._client import CHUNK, Client, quote, quote_path
from .errors import AlreadyExists, InvalidArgument

__all__ = [
    "Volume",
    "FileEntry",
    "FileEntryType",
    "VolumeUpload",
    "VolumeHistory",
    "VolumeVersion",
    "DiffEntry",
    "DiffChange",
]

# Entries per listing page (the server's most is 10,000).
_PAGE = 1000

# `NAME@VERSION`: a volume's name with a version (no volume name ends in `@`
# and digits).
_AT_VERSION = re.compile(r"^(.*)@([0-9]+)$", re.DOTALL)


class FileEntryType(enum.Enum):
    """What a listed path is."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"


_KINDS = {"file": FileEntryType.FILE, "dir": FileEntryType.DIRECTORY, "symlink": FileEntryType.SYMLINK}


@dataclass(frozen=True)
class FileEntry:
    """One entry of `Volume.listdir`."""

    #: Relative to the volume root, `/`-separated, no leading `/`.
    path: str
    type: FileEntryType
    #: Bytes (0 for directories).
    size: int
    #: Modification time, seconds since the Unix epoch.
    mtime: int


@dataclass(frozen=True)
class VolumeVersion:
    """One committed version, as `Volume.history` lists it."""

    version: int
    #: When the commit landed, milliseconds since the Unix epoch.
    time_ms: int
    #: Paths the commit put (files and directories created or modified).
    changed: int
    #: Paths the commit removed.
    removed: int
    #: Bytes of the files the commit created or replaced.
    bytes_added: int

    @property
    def time(self) -> datetime.datetime:
        """When the commit landed, in UTC."""
        return datetime.datetime.fromtimestamp(self.time_ms / 1000, tz=datetime.timezone.utc)


@dataclass(frozen=True)
class VolumeHistory:
    """A volume's kept versions: what `Volume.history` returns."""

    #: The latest committed version.
    head: int
    #: The oldest version that can still be read (older ones are past the
    #: retention).
    oldest: int
    #: How long a replaced version stays readable, in milliseconds (0: only
    #: the head is kept).
    retention_ms: int
    #: Newest first; version 0 (the empty volume) has no entry.
    versions: List[VolumeVersion]

    @property
    def retention(self) -> datetime.timedelta:
        """`retention_ms` as a `timedelta`."""
        return datetime.timedelta(milliseconds=self.retention_ms)


class DiffChange(enum.Enum):
    """How a path differs between two versions (read from the older to the
    newer)."""

    ADDED = "added"
    MODIFIED = "modified"
    REMOVED = "removed"


@dataclass(frozen=True)
class DiffEntry:
    """One path that differs between two versions, as `Volume.diff` lists
    it."""

    #: Relative to the volume root, `/`-separated, no leading `/`.
    path: str
    change: DiffChange
    #: What the path is in the newer version (in the older one when it was
    #: removed).
    type: FileEntryType
    #: Its size in the older version (None: it did not exist there).
    size_before: Optional[int]
    #: Its size in the newer version (None: it does not exist there).
    size_after: Optional[int]


class Volume:
    """A handle to one volume. Open it with `Volume.from_name`.

    A handle opened at a version (`from_name(name, version=V)` or
    `from_name("name@V")`) reads that version and refuses every write with
    `InvalidArgument`, before sending anything."""

    def __init__(self, name: str, *, client: Optional[Client] = None, version: Optional[int] = None) -> None:
        m = _AT_VERSION.match(name)
        if m:
            at = int(m.group(2))
            if version is not None and int(version) != at:
                raise InvalidArgument(f"{name}: give the version once, in the name or as version=")
            name, version = m.group(1), at
        if version is not None and (isinstance(version, bool) or int(version) < 0):
            raise InvalidArgument(f"version={version!r}: a volume version is an integer, 0 or more")
        self._name = name
        self._at: Optional[int] = None if version is None else int(version)
        self._client = client or Client.default()
        self._base = f"/v1/volumes/{quote(name)}"

    @classmethod
    def from_name(
        cls,
        name: str,
        create_if_missing: bool = False,
        *,
        version: Optional[int] = None,
        client: Optional[Client] = None,
    ) -> "Volume":
        """The volume called `name` (created first if `create_if_missing`).
        Raises `NotFound` when it does not exist, `AccessDenied` when the
        token may not read it.

        With `version` (or a name spelled `"name@12"`), a read-only handle
        on that version: its reads see the volume as that commit left it,
        and its writes raise `InvalidArgument`. Raises `NotFound` when the
        version was never committed or is past the volume's retention (the
        message names the head or the oldest version kept)."""
        v = cls(name, client=client, version=version)
        if v._at is not None:
            if create_if_missing:
                raise InvalidArgument(
                    f"{v!r}: a handle on a version cannot create the volume; create it first"
                )
            # A listing of one entry checks both the volume and the version.
            v._client.request("GET", f"{v._base}/ls", query={"limit": 1, "version": v._at})
        elif create_if_missing:
            try:
                v._client.request("POST", v._base)
            except AlreadyExists:
                pass
        else:
            v._client.request("GET", v._base)
        return v

    @staticmethod
    def delete(name: str, *, client: Optional[Client] = None) -> None:
        """Deletes the volume called `name` (`Busy` while a function has it
        mounted)."""
        (client or Client.default()).request("DELETE", f"/v1/volumes/{quote(name)}")

    @property
    def name(self) -> str:
        """The volume's name (without any `@VERSION`)."""
        return self._name

    @property
    def version(self) -> int:
        """The version this handle reads: the volume's latest committed
        version, or the one the handle was opened at."""
        if self._at is not None:
            return self._at
        return int(self._client.request("GET", self._base).json()["version"])

    @property
    def read_only(self) -> bool:
        """Whether this handle was opened at a version (and so refuses
        writes)."""
        return self._at is not None

    def __repr__(self) -> str:
        at = "" if self._at is None else f"@{self._at}"
        return f"<vessel.Volume {self._name + at!r}>"

    def _file(self, path: str) -> str:
        p = path.lstrip("/")
        if not p:
            raise InvalidArgument("a file path is needed, not the volume's root")
        return f"{self._base}/files/{quote_path(p)}"

    def _read_query(self, **query: Any) -> Dict[str, Any]:
        """A read's query: `query`, with the handle's version if it has one."""
        if self._at is not None:
            query["version"] = self._at
        return query

    def _writable(self) -> None:
        """Raises `InvalidArgument` on a handle opened at a version."""
        if self._at is not None:
            raise InvalidArgument(
                f"volume {self._name}@{self._at} is a read-only handle on version {self._at}: "
                f"write through Volume.from_name({self._name!r}) (restore() brings a version back)"
            )

    # -- listing ---------------------------------------------------------

    def iterdir(self, path: str = "/", recursive: bool = True) -> Iterator[FileEntry]:
        """The entries under directory `path`, recursive by default (as
        Modal's `iterdir`), a page at a time."""
        cursor: Optional[str] = None
        while True:
            r = self._client.request(
                "GET",
                f"{self._base}/ls",
                query=self._read_query(path=path, recursive=recursive, limit=_PAGE, cursor=cursor),
            )
            for e in r.json():
                yield FileEntry(e["path"], _KINDS[e["type"]], int(e["size"]), int(e["mtime_ms"]) // 1000)
            cursor = r.headers.get("vessel-next")
            if not cursor:
                return

    def listdir(self, path: str = "/", recursive: bool = False) -> List[FileEntry]:
        """The entries of directory `path` ("/" is the root)."""
        return list(self.iterdir(path, recursive))

    # -- reading ---------------------------------------------------------

    def iter_file(self, path: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """A file's bytes in chunks, streamed: only one chunk is in memory."""
        r = self._client.request("GET", self._file(path), query=self._read_query(), stream=True)
        yield from r.iter_bytes(chunk_size)

    def read_file(self, path: str) -> bytes:
        """A whole file. Raises `NotFound` when it does not exist. For a
        large file, stream it with `iter_file` or `read_file_into_fileobj`."""
        return self._client.request("GET", self._file(path), query=self._read_query()).content

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes of a file from `offset` (fewer at the end)."""
        if length <= 0:
            return b""
        r = self._client.request(
            "GET",
            self._file(path),
            query=self._read_query(),
            headers={"Range": f"bytes={offset}-{offset + length - 1}"},
            ok=(416,),
        )
        return b"" if r.status == 416 else r.content

    def read_file_into_fileobj(self, path: str, fileobj: BinaryIO) -> int:
        """Streams a file into `fileobj`; returns the bytes written."""
        n = 0
        for chunk in self.iter_file(path):
            fileobj.write(chunk)
            n += len(chunk)
        return n

    # -- writing ---------------------------------------------------------

    def write_file(
        self,
        path: str,
        data: Union[bytes, str, BinaryIO],
        overwrite: bool = False,
        *,
        if_version: Optional[int] = None,
    ) -> int:
        """Writes a whole file (text as UTF-8; a binary file object is
        streamed), creating parent directories, and commits it. Raises
        `AlreadyExists` when it exists and not `overwrite`. Returns the
        volume's new version.

        `if_version` is the volume version the caller read the path at: the
        write lands only if no commit after it changed the path (or anything
        under it), and may then replace an existing file without
        `overwrite`; otherwise it raises `PreconditionFailed` naming the
        path, and nothing changes."""
        self._writable()
        headers = {"Content-Type": "application/octet-stream"}
        if if_version is not None:
            headers["If-Match"] = f'"{int(if_version)}"'
        if isinstance(data, str):
            data = data.encode("utf-8")
        body: Any = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
        r = self._client.request(
            "PUT",
            self._file(path),
            body=body,
            query={"force": True} if overwrite else None,
            headers=headers,
        )
        return int(r.json()["version"])

    def remove(self, path: str, recursive: bool = False) -> None:
        """Removes a file, or a directory (empty unless `recursive`)."""
        self._writable()
        self._client.request(
            "DELETE", self._file(path), query={"recursive": True} if recursive else None
        )

    remove_file = remove

    def copy(self, srcs: Union[str, Sequence[str]], dst: str) -> None:
        """Copies one file to `dst`, or several into directory `dst`."""
        self._writable()
        srcs = [srcs] if isinstance(srcs, str) else list(srcs)
        self._client.request(
            "POST", f"{self._base}/cp", json_body={"srcs": srcs, "dst": dst, "recursive": True}
        )

    copy_files = copy

    def batch_upload(self, force: bool = False) -> "VolumeUpload":
        """Uploads local files and directories, as Modal's:

            with vol.batch_upload() as batch:
                batch.put_file("model.bin", "/weights/model.bin")
                batch.put_directory("./data", "/data")

        The uploads run when the block ends; each file is streamed from
        disk. Without `force`, a path that exists already raises
        `AlreadyExists` (files uploaded before it stay). A progress bar goes
        to stderr when it is a terminal."""
        self._writable()
        return VolumeUpload(self, force)

    # -- history ---------------------------------------------------------

    def history(self, limit: int = 100) -> VolumeHistory:
        """The volume's kept versions, newest first, at most `limit` (1 to
        10,000), with its head, the oldest version still readable and its
        retention. On a handle opened at a version, still the whole
        volume's."""
        r = self._client.request("GET", f"{self._base}/history", query={"limit": limit})
        h = r.json()
        return VolumeHistory(
            head=int(h["head"]),
            oldest=int(h["oldest"]),
            retention_ms=int(h["retention_ms"]),
            versions=[
                VolumeVersion(
                    version=int(v["version"]),
                    time_ms=int(v["time_ms"]),
                    changed=int(v["changed"]),
                    removed=int(v["removed"]),
                    bytes_added=int(v["bytes_added"]),
                )
                for v in h["versions"]
            ],
        )

    def diff(self, from_version: int, to_version: Optional[int] = None) -> List[DiffEntry]:
        """The paths added, modified and removed from version `from_version`
        to `to_version` (default: the version this handle reads, the head
        unless it was opened at one), in path order. Either order works:
        `change` reads from `from_version` to `to_version`. Raises
        `NotFound` for a version that is not kept."""
        if to_version is None:
            to_version = self._at
        r = self._client.request(
            "GET", f"{self._base}/diff", query={"from": int(from_version), "to": to_version}
        )
        return [
            DiffEntry(
                path=e["path"],
                change=DiffChange(e["change"]),
                type=_KINDS[e["type"]],
                size_before=None if e.get("size_before") is None else int(e["size_before"]),
                size_after=None if e.get("size_after") is None else int(e["size_after"]),
            )
            for e in r.json()
        ]

    def restore(self, version: int) -> int:
        """Makes version `version`'s tree the head again, as a new commit
        (the versions in between stay in the history). Returns the new
        version. Raises `NotFound` for a version that is not kept."""
        self._writable()
        r = self._client.request("POST", f"{self._base}/restore", query={"version": int(version)})
        return int(r.json()["version"])

    def fork(self, name: str) -> "Volume":
        """Makes a new volume called `name` whose first version is this
        handle's tree (the head, or the version it was opened at), without
        copying anything, and returns a handle on it. Later commits to
        either volume do not show in the other; this one cannot be deleted
        while the fork exists (`Busy`). Raises `AlreadyExists` when `name`
        exists, `NotFound` for a version that is not kept."""
        query: Dict[str, Any] = {"to": name}
        if self._at is not None:
            query["version"] = self._at
        self._client.request("POST", f"{self._base}/fork", query=query)
        return Volume(name, client=self._client)

    def set_retention(self, retention: Union[datetime.timedelta, float]) -> None:
        """How long a replaced version stays readable: a `timedelta`, or a
        number of seconds (0 keeps only the head). A shorter retention
        prunes at the next gc; versions already pruned do not come back
        under a longer one."""
        seconds = retention.total_seconds() if isinstance(retention, datetime.timedelta) else float(retention)
        if not 0 <= seconds < float("inf"):
            raise InvalidArgument(f"retention {retention!r}: a retention is 0 seconds or more")
        self._writable()
        self._client.request(
            "PUT", f"{self._base}/retention", query={"retention_ms": int(round(seconds * 1000))}
        )


class VolumeUpload:
    """Files queued by `Volume.batch_upload`, sent when the block ends."""

    def __init__(self, volume: Volume, force: bool) -> None:
        self._volume = volume
        self._force = force
        self._files: List[Tuple[Path, str]] = []

    def put_file(self, local: Union[str, os.PathLike, BinaryIO], remote: str) -> None:
        """Queues one local file (a path, or a binary file object) for
        `remote`."""
        if hasattr(local, "read"):
            self._files.append((local, remote))  # type: ignore[arg-type]
            return
        p = Path(local)  # type: ignore[arg-type]
        if not p.is_file():
            raise InvalidArgument(f"{p} is not a file")
        self._files.append((p, remote))

    def put_directory(self, local: Union[str, os.PathLike], remote: str, recursive: bool = True) -> None:
        """Queues every file under local directory `local`, keeping their
        paths relative to it under `remote`."""
        root = Path(local)
        if not root.is_dir():
            raise InvalidArgument(f"{root} is not a directory")
        base = remote.rstrip("/")
        walk = sorted(root.rglob("*") if recursive else root.iterdir())
        for p in walk:
            if p.is_file() and not p.is_symlink():
                rel = p.relative_to(root).as_posix()
                self._files.append((p, f"{base}/{rel}"))

    def __enter__(self) -> "VolumeUpload":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.run()

    def run(self) -> None:
        """Uploads what is queued (the `with` block's end does it)."""
        files, self._files = self._files, []
        bar = _Progress(len(files), sum(_size(f) for f, _ in files)) if sys.stderr.isatty() else None
        for local, remote in files:
            if isinstance(local, Path):
                with open(local, "rb") as f:
                    self._volume.write_file(remote, f, overwrite=self._force)
            else:
                self._volume.write_file(remote, local, overwrite=self._force)
            if bar:
                bar.advance(_size(local))
        if bar:
            bar.finish()


def _size(f: Any) -> int:
    try:
        return f.stat().st_size if isinstance(f, Path) else 0
    except OSError:
        return 0


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, files: int, total: int) -> None:
        self.files, self.total = files, total
        self.done_files, self.done = 0, 0
        self.start = time.monotonic()
        self.draw()

    def advance(self, n: int) -> None:
        self.done_files += 1
        self.done += n
        self.draw()

    def draw(self) -> None:
        width = 30
        frac = self.done / self.total if self.total else (self.done_files / self.files if self.files else 1.0)
        filled = int(width * frac)
        mb = self.done / 1e6
        rate = mb / max(time.monotonic() - self.start, 1e-3)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done_files}/{self.files} files, "
            f"{mb:.1f}/{self.total / 1e6:.1f} MB, {rate:.1f} MB/s"
        )
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
