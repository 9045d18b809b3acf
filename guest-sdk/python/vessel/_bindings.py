"""Finds the bindings componentize-py generated for the app's world.

An app's world includes `vessel:storage/imports@0.1.0`, so its bindings hold
`wit_world.imports.{types,volume,dict,functions}`. They are looked up on
first use, so a world that imports only some interfaces can still use the
parts of this SDK that need only those.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def interface(name: str) -> ModuleType:
    """The generated module of the `vessel:storage` interface `name`."""
    try:
        return importlib.import_module(f"wit_world.imports.{name}")
    except ImportError as e:
        raise ImportError(
            f"this component's world does not import vessel:storage/{name}: "
            "add `include vessel:storage/imports@0.1.0;` to your world "
            "(and build it with `vessel build`)"
        ) from e
