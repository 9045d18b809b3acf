"""One-file apps: `@vessel.function` marks the functions an app exports,
with what each may reach and its limits, as Modal's `@app.function` does:

    @vessel.function(mounts={"/data": "notes"}, dicts=["counts"], timeout=60)
    def add(text: str) -> int:
        ...

`vessel build app.py` reads the decorators and the type hints (without
running the app) and writes the WIT world, the exports and the manifest;
`vessel run app.py::main` builds and runs. The decorator itself only
records the function, so the app's module also imports and runs on an
ordinary Python (`vessel.testing`).

`from_wit` and `to_wit` are what the generated exports call to turn WIT
values into the hinted types and back: a `dict[str, T]` travels as a list
of pairs, a dataclass as a record.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar, Union

__all__ = ["function", "FUNCTIONS"]

F = TypeVar("F", bound=Callable[..., Any])

#: The decorated functions of the app, by Python name.
FUNCTIONS: Dict[str, Callable[..., Any]] = {}


def function(
    _fn: Optional[F] = None,
    *,
    mounts: Optional[Mapping[str, str]] = None,
    dicts: Optional[List[str]] = None,
    volumes: Optional[List[str]] = None,
    timeout: Optional[float] = None,
    memory: Optional[int] = None,
    disk: Optional[int] = None,
    max_containers: Optional[int] = None,
    idle_timeout: Optional[float] = None,
    commit_every: Optional[float] = None,
    fuel: Optional[int] = None,
) -> Union[F, Callable[[F], F]]:
    """Marks a function of a one-file app. `mounts` maps guest paths to
    volume names; `dicts` and `volumes` name what it may open by name;
    `timeout` (seconds), `memory` and `disk` (MiB), `max_containers`,
    `idle_timeout` and `commit_every` (seconds) and `fuel` are the
    manifest's keys of the same names. Volumes and dicts it names are
    created when missing. Give the options as literals: the build reads
    them from the source."""
    options = {
        k: v
        for k, v in dict(
            mounts=dict(mounts) if mounts is not None else None,
            dicts=dicts,
            volumes=volumes,
            timeout=timeout,
            memory=memory,
            disk=disk,
            max_containers=max_containers,
            idle_timeout=idle_timeout,
            commit_every=commit_every,
            fuel=fuel,
        ).items()
        if v is not None
    }

    def mark(fn: F) -> F:
        fn.__vessel_function__ = options  # type: ignore[attr-defined]
        FUNCTIONS[fn.__name__] = fn
        return fn

    if _fn is not None:
        return mark(_fn)
    return mark


def from_wit(spec: Any, value: Any, app: ModuleType) -> Any:
    """A WIT value as the type hint `spec` describes (see scripts/py-app.py)."""
    if spec == "p":
        return value
    kind = spec[0]
    if kind == "list":
        return [from_wit(spec[1], x, app) for x in value]
    if kind == "dict":
        return {k: from_wit(spec[1], x, app) for k, x in value}
    if kind == "opt":
        return None if value is None else from_wit(spec[1], value, app)
    if kind == "tuple":
        return tuple(from_wit(s, x, app) for s, x in zip(spec[1], value))
    if kind == "rec":
        cls = getattr(app, spec[1])
        return cls(**{f: from_wit(s, getattr(value, f), app) for f, s in spec[3]})
    raise TypeError(f"unknown conversion {spec!r}")


def to_wit(spec: Any, value: Any, world: ModuleType) -> Any:
    """A value of the hinted type as the WIT value its export returns."""
    if spec == "p":
        return value
    kind = spec[0]
    if kind == "list":
        return [to_wit(spec[1], x, world) for x in value]
    if kind == "dict":
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a dict, got {type(value).__name__}")
        return [(str(k), to_wit(spec[1], x, world)) for k, x in value.items()]
    if kind == "opt":
        return None if value is None else to_wit(spec[1], value, world)
    if kind == "tuple":
        return tuple(to_wit(s, x, world) for s, x in zip(spec[1], value))
    if kind == "rec":
        cls = getattr(world, spec[2])
        return cls(**{f: to_wit(s, getattr(value, f), world) for f, s in spec[3]})
    raise TypeError(f"unknown conversion {spec!r}")
