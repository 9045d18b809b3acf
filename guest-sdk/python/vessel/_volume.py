"""Volumes: named, versioned file trees.

Inside a mount, use ordinary file I/O (`open`, `pathlib`); `commit()`
publishes this container's changes and `reload()` brings in other
containers' commits. The object methods (`listdir`, `read_file`, ...) work on
the volume's view in this container without a mount.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator, List, Optional, Sequence, Union

from . import _bindings
from .errors import Conflict, InvalidArgument, wit_call

__all__ = [
    "Volume",
    "FileEntry",
    "FileEntryType",
    "CommitInfo",
    "VolumeVersion",
    "VolumeHistory",
    "DiffChange",
    "DiffEntry",
]

# Bytes per read-file call when reading a whole file (the host allows up to
# 64 MiB per call).
_CHUNK = 8 << 20


class FileEntryType(enum.Enum):
    """What a listed path is."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"


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
class CommitInfo:
    """What `Volume.commit` published."""

    #: The committed version this container now sees.
    version: int
    #: Files and directories created or modified.
    changed: int
    #: Files and directories removed.
    removed: int


@dataclass(frozen=True)
class VolumeVersion:
    """One committed version, as `Volume.history` lists it."""

    version: int
    #: When the commit landed, in milliseconds since the Unix epoch.
    time_ms: int
    #: Paths the commit put.
    changed: int
    #: Paths the commit removed.
    removed: int
    #: Bytes of the files it created or replaced.
    bytes_added: int


@dataclass(frozen=True)
class VolumeHistory:
    """A volume's kept versions."""

    head: int
    #: The oldest version that can still be read.
    oldest: int
    #: How long a replaced version stays readable, in milliseconds.
    retention_ms: int
    #: Newest first.
    versions: List[VolumeVersion]


class DiffChange(enum.Enum):
    """How a path differs between two versions."""

    ADDED = "added"
    MODIFIED = "modified"
    REMOVED = "removed"


@dataclass(frozen=True)
class DiffEntry:
    """One path of `Volume.diff`."""

    path: str
    change: DiffChange
    #: What it is in the newer version (the older one when removed).
    type: FileEntryType
    #: Its size in the older version (None: it did not exist).
    size_before: Optional[int]
    #: Its size in the newer version (None: it does not exist).
    size_after: Optional[int]


_KINDS = {
    "FILE": FileEntryType.FILE,
    "DIRECTORY": FileEntryType.DIRECTORY,
    "SYMLINK": FileEntryType.SYMLINK,
}


class Volume:
    """A handle to one volume as this container sees it."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @classmethod
    def from_name(
        cls, name: str, create_if_missing: bool = False, *, version: Optional[int] = None
    ) -> "Volume":
        """The volume called `name` (created first if `create_if_missing`).
        Raises `NotFound` when it does not exist, `AccessDenied` when the
        function's manifest does not grant it.

        With `version`, a read-only handle on that kept version: its reads
        see the volume as that commit left it, its writes raise
        `AccessDenied`. `NotFound` names the head or the oldest version kept
        when `version` is not one."""
        wit = _bindings.interface("volume")
        if version is not None:
            if create_if_missing:
                raise InvalidArgument("a handle on a version cannot create the volume")
            return cls(wit_call(wit.Volume.at_version, name, int(version)))
        return cls(wit_call(wit.Volume.from_name, name, create_if_missing))

    @classmethod
    def mounted(cls, path: str) -> "Volume":
        """The volume mounted at `path` (for example "/data"); `NotFound`
        when nothing is mounted there."""
        wit = _bindings.interface("volume")
        return cls(wit_call(wit.Volume.mounted, str(path)))

    @property
    def name(self) -> str:
        return self._handle.name()

    @property
    def version(self) -> int:
        """The committed version this container's view is based on."""
        return self._handle.version()

    def __repr__(self) -> str:
        return f"<vessel.Volume {self.name!r} version={self.version}>"

    def commit(self, conflicts: Optional[str] = None) -> CommitInfo:
        """Publishes this container's changes as a new version. Other
        containers see them after their own `reload()` or when they start.

        `conflicts` overrides the mount's policy for this call:
        `"last-writer-wins"`, or `"fail"`: a commit that would overwrite
        paths other commits changed since this container read them commits
        nothing and raises `Conflict` (with `.paths` and `.head`)."""
        if conflicts is None:
            c = wit_call(self._handle.commit)
            return CommitInfo(version=c.version, changed=c.changed, removed=c.removed)
        wit = _bindings.interface("volume")
        policies = {
            "fail": wit.ConflictPolicy.FAIL,
            "last-writer-wins": wit.ConflictPolicy.LAST_WRITER_WINS,
        }
        if conflicts not in policies:
            raise InvalidArgument(
                f"conflicts={conflicts!r}: \"last-writer-wins\" or \"fail\""
            )
        outcome = wit_call(self._handle.commit_with, policies[conflicts])
        if type(outcome).__name__.endswith("_Conflict"):
            raise Conflict(list(outcome.value.paths), outcome.value.head)
        c = outcome.value
        return CommitInfo(version=c.version, changed=c.changed, removed=c.removed)

    def reload(self) -> int:
        """Commits, then moves this container's view to the latest version
        and returns it. Raises `Busy` (with `.paths`) while files under the
        mount are open."""
        return wit_call(self._handle.reload)

    # -- versions --------------------------------------------------------

    def history(self, limit: int = 100) -> VolumeHistory:
        """The volume's kept versions, newest first, at most `limit`."""
        h = wit_call(self._handle.history, int(limit))
        return VolumeHistory(
            head=h.head,
            oldest=h.oldest,
            retention_ms=h.retention_ms,
            versions=[
                VolumeVersion(v.version, v.time_ms, v.changed, v.removed, v.bytes_added)
                for v in h.versions
            ],
        )

    def diff(self, since: int, until: Optional[int] = None) -> List[DiffEntry]:
        """The paths added, modified and removed from version `since` to
        `until` (default: this handle's version), in path order."""
        return [
            DiffEntry(
                d.path,
                DiffChange[d.change.name],
                _KINDS[d.kind.name],
                d.size_before,
                d.size_after,
            )
            for d in wit_call(self._handle.diff, int(since), until)
        ]

    def fork(self, name: str) -> "Volume":
        """Makes a new volume called `name` whose first version is this
        handle's committed version (`version`), copying nothing, and
        returns it. Changes not committed yet are not in the fork; the
        function must be granted `name`."""
        return Volume(wit_call(self._handle.fork, name))

    # -- object access ---------------------------------------------------

    def listdir(self, path: str = "/", recursive: bool = False) -> List[FileEntry]:
        """The entries of directory `path` ("/" is the root)."""
        return [
            FileEntry(e.path, _KINDS[e.kind.name], e.size, e.mtime)
            for e in wit_call(self._handle.listdir, path, recursive)
        ]

    def iterdir(self, path: str = "/", recursive: bool = True) -> Iterator[FileEntry]:
        """Like `listdir`, recursive by default (as Modal's `iterdir`)."""
        yield from self.listdir(path, recursive)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes of a file from `offset` (fewer at the end)."""
        return bytes(wit_call(self._handle.read_file, path, offset, length))

    def iter_file(self, path: str, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """A file's bytes in chunks of `chunk_size`."""
        offset = 0
        while True:
            chunk = self.read_range(path, offset, chunk_size)
            if chunk:
                yield chunk
            if len(chunk) < chunk_size:
                return
            offset += len(chunk)

    def read_file(self, path: str) -> bytes:
        """A whole file. Raises `NotFound` when it does not exist."""
        return b"".join(self.iter_file(path))

    def read_file_into_fileobj(self, path: str, fileobj: BinaryIO) -> int:
        """Writes a file into `fileobj`; returns the bytes written."""
        n = 0
        for chunk in self.iter_file(path):
            fileobj.write(chunk)
            n += len(chunk)
        return n

    def write_file(self, path: str, data: Union[bytes, str], overwrite: bool = False) -> None:
        """Writes a whole file (text as UTF-8), creating parent directories.
        Raises `AlreadyExists` when it exists and not `overwrite`."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        wit_call(self._handle.write_file, path, bytes(data), overwrite)

    def remove(self, path: str, recursive: bool = False) -> None:
        """Removes a file, or a directory (empty unless `recursive`)."""
        wit_call(self._handle.remove, path, recursive)

    remove_file = remove

    def copy(self, srcs: Union[str, Sequence[str]], dst: str) -> None:
        """Copies one file to `dst`, or several into directory `dst`."""
        srcs = [srcs] if isinstance(srcs, str) else list(srcs)
        wit_call(self._handle.copy, srcs, dst)

    copy_files = copy
