"""vessel: volumes, dicts and calls to other functions from a Python guest.

    import vessel

    kv = vessel.Dict.from_name("kv", create_if_missing=True)
    kv["cloud"] = "dictionary"          # stored as JSON
    kv["cloud"]                         # 'dictionary'; KeyError when missing

    vol = vessel.Volume.mounted("/data")
    with open("/data/hello.txt", "w") as f:
        f.write("hello")
    vol.commit()                        # CommitInfo(version=..., changed=1, removed=0)

    vessel.remote("square", 7)          # another function of the app

Build with `vessel build APP`: the app's world includes
`vessel:storage/imports@0.1.0`, whose componentize-py bindings this package
wraps. Errors are `vessel.Error` subclasses (`vessel.NotFound`, ...).
"""

from ._app import function
from ._dict import Dict, Lease, Limits, Versioned
from ._functions import FunctionCall, map, remote, spawn, starmap
from ._volume import (
    CommitInfo,
    DiffChange,
    DiffEntry,
    FileEntry,
    FileEntryType,
    Volume,
    VolumeHistory,
    VolumeVersion,
)
from .errors import (
    AccessDenied,
    AlreadyExists,
    Busy,
    CallFailed,
    CodecError,
    Conflict,
    Error,
    InvalidArgument,
    IoError,
    NoSpace,
    NotFound,
    PreconditionFailed,
    RemoteError,
    TooLarge,
    Unavailable,
)

__all__ = [
    "function",
    "Dict",
    "Lease",
    "Limits",
    "Versioned",
    "Volume",
    "CommitInfo",
    "VolumeHistory",
    "VolumeVersion",
    "DiffChange",
    "DiffEntry",
    "FileEntry",
    "FileEntryType",
    "remote",
    "spawn",
    "map",
    "starmap",
    "FunctionCall",
    "Error",
    "NotFound",
    "AccessDenied",
    "AlreadyExists",
    "InvalidArgument",
    "TooLarge",
    "Busy",
    "NoSpace",
    "PreconditionFailed",
    "Conflict",
    "Unavailable",
    "IoError",
    "CallFailed",
    "RemoteError",
    "CodecError",
]
