"""The connection to a vessel server: `vessel serve` over HTTP(S), or a
data dir's owner socket on this machine.

One `Client` is shared by every handle made without an explicit one
(`Client.default()`); it keeps one keep-alive connection per thread, so
handles may be used from several threads at once (`Function.map` does).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterable, Iterator, Mapping, Optional, Tuple, Union

from .errors import ConnectError, Error, InvalidArgument, from_response, raised_error

__all__ = ["Client", "Response"]

# Read and write in chunks of this many bytes when streaming.
CHUNK = 1 << 20

Body = Union[None, bytes, BinaryIO, Iterable[bytes]]


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (the owner socket)."""

    def __init__(self, path: str, timeout: Optional[float]) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if self.timeout is not None:
                s.settimeout(self.timeout)
            s.connect(self._path)
        except BaseException:
            s.close()
            raise
        self.sock = s


def default_data_dir() -> Path:
    """Where `vessel` keeps its data dir: `$VESSEL_HOME`, else the user's
    data directory (`$XDG_DATA_HOME/vessel`, `~/.local/share/vessel`)."""
    home = os.environ.get("VESSEL_HOME")
    if home:
        return Path(home)
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "vessel"
    return Path.home() / ".local" / "share" / "vessel"


@dataclass
class Response:
    """An answer whose body has been read, or is still to be streamed."""

    status: int
    headers: Dict[str, str]
    _raw: Optional[http.client.HTTPResponse] = field(default=None, repr=False)
    _body: Optional[bytes] = field(default=None, repr=False)
    _done: Optional[Any] = field(default=None, repr=False)

    @property
    def content(self) -> bytes:
        if self._body is None:
            self._body = b"".join(self.iter_bytes())
        return self._body

    def json(self) -> Any:
        try:
            return json.loads(self.content)
        except ValueError as e:
            raise Error(f"the server's answer is not JSON: {e}", status=self.status) from None

    def iter_bytes(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The body in chunks; the connection is given back (or closed, when
        the iteration is abandoned) at the end."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        raw = self._raw
        if raw is None:
            return
        complete = False
        try:
            while True:
                chunk = raw.read(chunk_size)
                if not chunk:
                    complete = True
                    return
                yield chunk
        finally:
            self._raw = None
            if self._done is not None:
                self._done(complete)

    def iter_lines(self) -> Iterator[bytes]:
        """The body's lines (for NDJSON), each without its newline."""
        rest = b""
        for chunk in self.iter_bytes():
            rest += chunk
            *lines, rest = rest.split(b"\n")
            yield from lines
        if rest:
            yield rest


class Client:
    """A connection to one vessel server.

    `Client(url, token)` talks HTTP(S) to `vessel serve`;
    `Client(socket="/path/run/vessel.sock")` to a data dir's owner socket
    (no token: the socket admits only its own user). `Client.default()`
    picks from the environment (see `from_env`).
    """

    _default: Optional["Client"] = None
    _default_lock = threading.Lock()

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        socket: Optional[Union[str, Path]] = None,
        timeout: float = 300.0,
    ) -> None:
        if (url is None) == (socket is None):
            raise InvalidArgument("give a Client either url= or socket=")
        self._token = token
        self._timeout = timeout
        self._local = threading.local()
        if url is not None:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidArgument(f"VESSEL_URL {url!r}: expected http://HOST:PORT or https://HOST:PORT")
            self._scheme = parts.scheme
            self._host = parts.hostname
            self._port = parts.port
            self._base = parts.path.rstrip("/")
            self._socket: Optional[str] = None
            self.where = url
        else:
            self._scheme = "unix"
            self._host = "localhost"
            self._port = None
            self._base = ""
            self._socket = str(socket)
            self.where = f"unix:{socket}"

    @classmethod
    def from_env(cls) -> "Client":
        """`$VESSEL_URL` (with `$VESSEL_TOKEN`), else the owner socket of
        the data dir (`$VESSEL_HOME`, else `~/.local/share/vessel`)."""
        url = os.environ.get("VESSEL_URL")
        if url:
            return cls(url, os.environ.get("VESSEL_TOKEN") or None)
        sock = default_data_dir() / "run" / "vessel.sock"
        if sock.exists():
            return cls(socket=sock)
        raise ConnectError(
            "no vessel server to talk to: set VESSEL_URL (and VESSEL_TOKEN) to a `vessel serve`, "
            f"or run `vessel serve` on this machine (no owner socket at {sock})"
        )

    @classmethod
    def default(cls) -> "Client":
        """The client every handle uses unless given one: made by `from_env`
        on first use."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls.from_env()
            return cls._default

    @classmethod
    def set_default(cls, client: Optional["Client"]) -> None:
        """Replaces the default client (None: make it again from the
        environment on next use)."""
        with cls._default_lock:
            cls._default = client

    def __repr__(self) -> str:
        return f"<vessel.Client {self.where}>"

    # -- connections -----------------------------------------------------

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._socket is not None:
            return _UnixConnection(self._socket, self._timeout)
        if self._scheme == "https":
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _take(self) -> Tuple[http.client.HTTPConnection, bool]:
        """This thread's idle connection (reused: True), or a new one."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            return conn, True
        return self._new_connection(), False

    def _give_back(self, conn: http.client.HTTPConnection, reusable: bool) -> None:
        if reusable and getattr(self._local, "conn", None) is None:
            self._local.conn = conn
        else:
            conn.close()

    # -- requests --------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Mapping[str, Any]] = None,
        body: Body = None,
        json_body: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        stream: bool = False,
        ok: Iterable[int] = (),
    ) -> Response:
        """Sends one request. An error status raises the matching
        `vessel.Error`, unless it is in `ok`. With `stream`, the body is
        left to `Response.iter_bytes`."""
        url = self._base + path
        if query:
            q = {k: _query_value(v) for k, v in query.items() if v is not None}
            if q:
                url += "?" + urllib.parse.urlencode(q)
        h: Dict[str, str] = {"User-Agent": "vessel-client-python/0.1"}
        if self._token:
            h["Authorization"] = f"Bearer {self._token}"
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode()
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
        # A reused keep-alive connection the server has since closed fails
        # on first use; that one case is retried on a fresh connection
        # (nothing reached the server). A body that is a stream cannot be
        # sent twice, so it always gets a fresh connection.
        replayable = body is None or isinstance(body, (bytes, bytearray))
        for attempt in range(2):
            conn, reused = self._take() if replayable else (self._new_connection(), False)
            try:
                _send(conn, method, url, body, h)
                raw = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                if reused and attempt == 0:
                    continue
                raise ConnectError(f"{self.where}: {e}") from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise ConnectError(f"{self.where}: {e}") from None
            break
        headers_in = {k.lower(): v for k, v in raw.getheaders()}

        def done(complete: bool, conn: http.client.HTTPConnection = conn, raw: http.client.HTTPResponse = raw) -> None:
            self._give_back(conn, complete and not raw.will_close)

        resp = Response(raw.status, headers_in, raw, None, done)
        if raw.status >= 400 and raw.status not in ok:
            raise _error_of(resp)
        if not stream:
            resp.content  # read it all, giving the connection back
        return resp


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _send(conn: http.client.HTTPConnection, method: str, url: str, body: Body, headers: Dict[str, str]) -> None:
    if body is None or isinstance(body, (bytes, bytearray)):
        conn.request(method, url, body=body, headers=headers)
        return
    if hasattr(body, "read"):
        size = _size_of(body)  # type: ignore[arg-type]
        if size is not None:
            headers = dict(headers, **{"Content-Length": str(size)})
            conn.request(method, url, body=body, headers=headers)
            return
        f = body
        body = iter(lambda: f.read(CHUNK), b"")  # type: ignore[union-attr]
    conn.request(method, url, body=body, headers=headers, encode_chunked=True)


def _size_of(f: BinaryIO) -> Optional[int]:
    """The bytes left in a seekable file, else None."""
    try:
        here = f.tell()
        end = os.fstat(f.fileno()).st_size
        return max(0, end - here)
    except (OSError, AttributeError, ValueError):
        return None


def _error_of(resp: Response) -> Exception:
    try:
        detail = json.loads(resp.content).get("error", {})
        kind = str(detail.get("kind", ""))
        message = str(detail.get("message", ""))
        raised = detail.get("raised")
    except (ValueError, AttributeError):
        kind, message = "", resp.content.decode("utf-8", "replace").strip() or f"HTTP {resp.status}"
        raised = None
    if isinstance(raised, dict):
        # The function raised and did not catch: raise what it raised.
        return raised_error(message, raised, resp.status)
    return from_response(resp.status, kind, message, resp.headers)


def quote(segment: str) -> str:
    """One path segment (a name or key), percent-encoded."""
    return urllib.parse.quote(segment, safe="")


def quote_path(path: str) -> str:
    """A file path in a volume: each segment percent-encoded, `/` kept."""
    return urllib.parse.quote(path.lstrip("/"), safe="/")
