"""Volumes: named, versioned file trees, from outside a function.

The object methods of the guest SDK's `vessel.Volume` (`listdir`,
`iterdir`, `read_file`, `write_file`, `remove`, `copy`), over the HTTP API,
plus `batch_upload` for local files and directories. Each write through
this client is committed when it returns; functions see it from their next
start or `reload()`.
"""

from __future__ import annotations

import enum
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator, List, Optional, Sequence, Tuple, Union

from ._client import CHUNK, Client, quote, quote_path
from .errors import AlreadyExists, InvalidArgument

__all__ = ["Volume", "FileEntry", "FileEntryType", "VolumeUpload"]

# Entries per listing page (the server's most is 10,000).
_PAGE = 1000


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


class Volume:
    """A handle to one volume. Open it with `Volume.from_name`."""

    def __init__(self, name: str, *, client: Optional[Client] = None) -> None:
        self._name = name
        self._client = client or Client.default()
        self._base = f"/v1/volumes/{quote(name)}"

    @classmethod
    def from_name(
        cls, name: str, create_if_missing: bool = False, *, client: Optional[Client] = None
    ) -> "Volume":
        """The volume called `name` (created first if `create_if_missing`).
        Raises `NotFound` when it does not exist, `AccessDenied` when the
        token may not read it."""
        v = cls(name, client=client)
        if create_if_missing:
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
        return self._name

    @property
    def version(self) -> int:
        """The volume's latest committed version."""
        return int(self._client.request("GET", self._base).json()["version"])

    def __repr__(self) -> str:
        return f"<vessel.Volume {self._name!r}>"

    def _file(self, path: str) -> str:
        p = path.lstrip("/")
        if not p:
            raise InvalidArgument("a file path is needed, not the volume's root")
        return f"{self._base}/files/{quote_path(p)}"

    # -- listing ---------------------------------------------------------

    def iterdir(self, path: str = "/", recursive: bool = True) -> Iterator[FileEntry]:
        """The entries under directory `path`, recursive by default (as
        Modal's `iterdir`), a page at a time."""
        cursor: Optional[str] = None
        while True:
            r = self._client.request(
                "GET",
                f"{self._base}/ls",
                query={"path": path, "recursive": recursive, "limit": _PAGE, "cursor": cursor},
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
        r = self._client.request("GET", self._file(path), stream=True)
        yield from r.iter_bytes(chunk_size)

    def read_file(self, path: str) -> bytes:
        """A whole file. Raises `NotFound` when it does not exist. For a
        large file, stream it with `iter_file` or `read_file_into_fileobj`."""
        return self._client.request("GET", self._file(path)).content

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes of a file from `offset` (fewer at the end)."""
        if length <= 0:
            return b""
        r = self._client.request(
            "GET",
            self._file(path),
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

    def write_file(self, path: str, data: Union[bytes, str, BinaryIO], overwrite: bool = False) -> int:
        """Writes a whole file (text as UTF-8; a binary file object is
        streamed), creating parent directories, and commits it. Raises
        `AlreadyExists` when it exists and not `overwrite`. Returns the
        volume's new version."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        body: Any = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
        r = self._client.request(
            "PUT",
            self._file(path),
            body=body,
            query={"force": True} if overwrite else None,
            headers={"Content-Type": "application/octet-stream"},
        )
        return int(r.json()["version"])

    def remove(self, path: str, recursive: bool = False) -> None:
        """Removes a file, or a directory (empty unless `recursive`)."""
        self._client.request(
            "DELETE", self._file(path), query={"recursive": True} if recursive else None
        )

    remove_file = remove

    def copy(self, srcs: Union[str, Sequence[str]], dst: str) -> None:
        """Copies one file to `dst`, or several into directory `dst`."""
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
        return VolumeUpload(self, force)


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
