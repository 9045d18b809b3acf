"""vessel-client: vessel's dicts, volumes and functions from Python, outside
a function, through `vessel serve`'s HTTP API.

    import vessel

    kv = vessel.Dict.from_name("kv", create_if_missing=True)
    kv["cloud"] = "dictionary"          # stored as JSON
    kv["cloud"]                         # 'dictionary'; KeyError when missing

    vol = vessel.Volume.from_name("data", create_if_missing=True)
    vol.write_file("hello.txt", "hello")
    vol.read_file("hello.txt")          # b'hello'

    square = vessel.Function.from_name("math", "square")
    square.remote(7)                    # 49

The names and behaviour match the guest SDK's `vessel` package, so code that
uses only what both offer runs inside a function and outside it unchanged.
It connects to `$VESSEL_URL` with `$VESSEL_TOKEN`, else to the owner socket
of the local data dir; `vessel.Client(...)` connects elsewhere.
"""

from ._client import Client
from ._dict import Dict, Lease, Versioned
from ._functions import Function, FunctionCall
from ._volume import (
    DiffChange,
    DiffEntry,
    FileEntry,
    FileEntryType,
    Volume,
    VolumeHistory,
    VolumeUpload,
    VolumeVersion,
)
from .errors import (
    AccessDenied,
    AlreadyExists,
    Busy,
    CallFailed,
    CodecError,
    Conflict,
    ConnectError,
    Error,
    InternalError,
    InvalidArgument,
    IoError,
    NoSpace,
    NotFound,
    PreconditionFailed,
    RemoteError,
    Timeout,
    TooLarge,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Dict",
    "Lease",
    "Versioned",
    "Volume",
    "VolumeUpload",
    "FileEntry",
    "FileEntryType",
    "VolumeHistory",
    "VolumeVersion",
    "DiffEntry",
    "DiffChange",
    "Function",
    "FunctionCall",
    "Error",
    "NotFound",
    "AccessDenied",
    "Unauthorized",
    "AlreadyExists",
    "Conflict",
    "InvalidArgument",
    "TooLarge",
    "Busy",
    "NoSpace",
    "PreconditionFailed",
    "Unavailable",
    "TooManyRequests",
    "Timeout",
    "IoError",
    "CallFailed",
    "RemoteError",
    "CodecError",
    "InternalError",
    "ConnectError",
]
