"""Turns a one-file Python app into what componentize-py and vessel need.

    python3 scripts/py-app.py APP.py NAME WORK_DIR MANIFEST COMPONENT

APP.py holds functions decorated with `@vessel.function(...)` (or
`@function` imported from vessel) whose parameters and results carry type
hints. Read with `ast`, without running the app, this writes:

- WORK_DIR/wit/world.wit: world NAME, vessel's imports, one export per
  function, records for the dataclasses the hints name;
- WORK_DIR/app/_vessel_exports.py: the `WitWorld` class componentize-py
  builds, whose methods convert the WIT values to the hinted Python types
  (a `dict[str, T]` travels as a list of pairs, a dataclass as a record),
  call the app's function and convert its result back;
- MANIFEST: the app's vessel.toml, from the decorators' arguments, its
  functions in COMPONENT (a path relative to MANIFEST).

A hint outside the supported types, or a decorator argument that is not a
literal (or a module-level name bound once to one), stops it with exit status 2 and a message naming the file, the
line, the function and the parameter. Used by scripts/build-python.
"""

from __future__ import annotations

import ast
import json
import re
import sys

SUPPORTED = (
    "str, int, float, bool, bytes, None (results), list[T], dict[str, T], "
    "Optional[T] (or T | None), tuple[A, B, ...] and dataclasses defined in the app"
)
PRIMITIVES = {"str": "string", "int": "s64", "float": "f64", "bool": "bool", "bytes": "list<u8>"}
# The decorator's arguments and the manifest keys they become.
OPTIONS = {
    "mounts": dict,
    "dicts": list,
    "volumes": list,
    "timeout": (int, float),
    "memory": int,
    "disk": int,
    "max_containers": int,
    "idle_timeout": (int, float),
    "commit_every": (int, float),
    "fuel": int,
}
WIT_KEYWORDS = {
    "as", "async", "bool", "borrow", "char", "constructor", "enum", "export", "f32", "f64",
    "flags", "from", "func", "future", "import", "include", "interface", "list", "option",
    "own", "package", "record", "resource", "result", "s16", "s32", "s64", "s8", "static",
    "stream", "string", "tuple", "type", "u16", "u32", "u64", "u8", "use", "variant", "with",
    "world",
}


class Refused(Exception):
    pass


def kebab(name: str, what: str, line: int) -> str:
    """`snake_case` (or `CamelCase`) as a WIT identifier."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().split("_")
    if not name or any(not w or not re.fullmatch(r"[a-z][a-z0-9]*", w) for w in words):
        raise Refused(
            f"line {line}: {what} `{name}` cannot be a WIT name: use letters and digits in "
            "words joined by single underscores, each word starting with a letter"
        )
    out = "-".join(words)
    return f"%{out}" if out in WIT_KEYWORDS else out


class Constants(ast.NodeTransformer):
    """Module-level names bound once to a literal (`DATA = "/data"`),
    written into a decorator argument in their place."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.values:
            return ast.copy_location(ast.Constant(self.values[node.id]), node)
        return node


CONSTANTS: dict[str, object] = {}


def literal(node: ast.expr, what: str) -> object:
    try:
        return ast.literal_eval(Constants(CONSTANTS).visit(node))
    except ValueError:
        raise Refused(
            f"line {node.lineno}: {what} must be a literal (a string, number, list or dict "
            f"written out), not `{ast.unparse(node)}`"
        ) from None


def is_vessel_function(dec: ast.expr, names: set[str]) -> bool:
    target = dec.func if isinstance(dec, ast.Call) else dec
    if isinstance(target, ast.Attribute):
        return target.attr == "function" and isinstance(target.value, ast.Name) and target.value.id in names
    return isinstance(target, ast.Name) and target.id == "function" and "function" in names


def is_dataclass(cls: ast.ClassDef) -> bool:
    for dec in cls.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        text = ast.unparse(target)
        if text in ("dataclass", "dataclasses.dataclass"):
            return True
    return False


class Types:
    """Maps hints to WIT types and to the converters the exports use."""

    def __init__(self, classes: dict[str, ast.ClassDef]) -> None:
        self.classes = classes
        self.records: dict[str, str] = {}  # class name -> WIT record text
        self.order: list[str] = []

    def spec(self, node: ast.expr | None, where: str, result: bool = False) -> tuple[str, object]:
        """The WIT type of hint `node` and its converter spec."""
        if node is None:
            raise Refused(f"{where} has no type hint; give one of: {SUPPORTED}")
        text = ast.unparse(node)
        refuse = Refused(f"{where}: type `{text}` is not supported; use {SUPPORTED}")
        if isinstance(node, ast.Constant) and node.value is None:
            if result:
                return "", "p"
            raise refuse
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            # A string hint ("Point"): read what it names.
            try:
                inner = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                raise refuse from None
            return self.spec(inner, where, result)
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = text.removeprefix("typing.").removeprefix("builtins.")
            if name in PRIMITIVES:
                return PRIMITIVES[name], "p"
            if name in self.classes:
                return self.record(name, where)
            raise refuse
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            parts = [node.left, node.right]
            nones = [p for p in parts if isinstance(p, ast.Constant) and p.value is None]
            others = [p for p in parts if p not in nones]
            if len(nones) == 1 and len(others) == 1:
                wit, spec = self.spec(others[0], where)
                return f"option<{wit}>", ("opt", spec)
            raise refuse
        if isinstance(node, ast.Subscript):
            base = ast.unparse(node.value).removeprefix("typing.")
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if base in ("list", "List", "Sequence") and len(args) == 1:
                wit, spec = self.spec(args[0], where)
                return f"list<{wit}>", ("list", spec)
            if base in ("dict", "Dict", "Mapping") and len(args) == 2:
                key = ast.unparse(args[0]).removeprefix("builtins.")
                if key != "str":
                    raise Refused(f"{where}: type `{text}`: dict keys must be str")
                wit, spec = self.spec(args[1], where)
                return f"list<tuple<string, {wit}>>", ("dict", spec)
            if base == "Optional" and len(args) == 1:
                wit, spec = self.spec(args[0], where)
                return f"option<{wit}>", ("opt", spec)
            if base == "Union" and len(args) == 2:
                nones = [a for a in args if isinstance(a, ast.Constant) and a.value is None]
                others = [a for a in args if a not in nones]
                if len(nones) == 1:
                    wit, spec = self.spec(others[0], where)
                    return f"option<{wit}>", ("opt", spec)
            if base in ("tuple", "Tuple") and args and not any(
                isinstance(a, ast.Constant) and a.value is Ellipsis for a in args
            ):
                parts = [self.spec(a, where) for a in args]
                return (
                    f"tuple<{', '.join(w for w, _ in parts)}>",
                    ("tuple", [s for _, s in parts]),
                )
        raise refuse

    def record(self, name: str, where: str) -> tuple[str, object]:
        cls = self.classes[name]
        wit_name = kebab(name, "dataclass", cls.lineno)
        fields = []
        for stmt in cls.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                fields.append((stmt.target.id, stmt.annotation, stmt.lineno))
        spec_fields: list[tuple[str, object]] = []
        if name not in self.records:
            self.records[name] = ""  # a recursive dataclass stops here
            lines = []
            for field, hint, line in fields:
                wit, spec = self.spec(hint, f"line {line}: field `{field}` of dataclass `{name}`")
                lines.append(f"        {kebab(field, 'field', line)}: {wit},")
                spec_fields.append((field, spec))
            if not lines:
                raise Refused(f"line {cls.lineno}: dataclass `{name}` has no fields")
            self.records[name] = f"    record {wit_name} {{\n" + "\n".join(lines) + "\n    }"
            self.order.append(name)
        else:
            for field, hint, line in fields:
                spec_fields.append((field, self.spec(hint, where)[1]))
        wit_class = "".join(w.capitalize() for w in wit_name.lstrip("%").split("-"))
        return wit_name, ("rec", name, wit_class, spec_fields)


def identity(spec: object) -> bool:
    if spec == "p":
        return True
    if isinstance(spec, tuple) and spec[0] in ("list", "opt"):
        return identity(spec[1])
    if isinstance(spec, tuple) and spec[0] == "tuple":
        return all(identity(s) for s in spec[1])
    return False


def main() -> None:
    path, name, work, manifest, component = sys.argv[1:6]
    module = path.rsplit("/", 1)[-1].removesuffix(".py")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        tree = ast.parse(source, path)
    except SyntaxError as e:
        raise Refused(f"line {e.lineno}: {e.msg}") from None
    # How the app names vessel: `import vessel`, `import vessel as v`,
    # `from vessel import function`.
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name == "vessel"}
        elif isinstance(node, ast.ImportFrom) and node.module == "vessel":
            names |= {a.asname or a.name for a in node.names if a.name == "function"}
    classes = {
        n.name: n for n in tree.body if isinstance(n, ast.ClassDef) and is_dataclass(n)
    }
    assigned: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            assigned[node.id] = assigned.get(node.id, 0) + 1
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and assigned.get(node.targets[0].id) == 1
        ):
            try:
                CONSTANTS[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    types = Types(classes)
    exports = []
    functions: dict[str, dict[str, object]] = {}
    volumes: set[str] = set()
    dicts: set[str] = set()
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        decs = [d for d in node.decorator_list if is_vessel_function(d, names)]
        if not decs:
            continue
        fn = node.name
        where = f"line {node.lineno}: function `{fn}`"
        if isinstance(node, ast.AsyncFunctionDef):
            raise Refused(f"{where} is async; vessel functions are plain `def`s")
        wit_fn = kebab(fn, "function", node.lineno)
        a = node.args
        if a.vararg or a.kwarg or a.posonlyargs or a.kwonlyargs:
            raise Refused(f"{where}: use plain parameters (no *args, **kwargs, / or *)")
        params = []
        first_default = len(a.args) - len(a.defaults)
        for i, arg in enumerate(a.args):
            wit, spec = types.spec(arg.annotation, f"{where}, parameter `{arg.arg}`")
            if i >= first_default:
                # A parameter with a default may be left out: an option,
                # whose none leaves the default to Python.
                if not wit.startswith("option<"):
                    wit = f"option<{wit}>"
                spec = ("default", spec)
            params.append((arg.arg, kebab(arg.arg, "parameter", node.lineno), wit, spec))
        wit_result, result_spec = types.spec(node.returns, f"{where}, its result", result=True)
        options: dict[str, object] = {}
        dec = decs[0]
        if isinstance(dec, ast.Call):
            if dec.args:
                raise Refused(f"{where}: give @function's options by name (mounts=..., dicts=...)")
            for kw in dec.keywords:
                if kw.arg not in OPTIONS:
                    raise Refused(
                        f"line {kw.value.lineno}: @function of `{fn}` has no option "
                        f"`{kw.arg}`; it takes: {', '.join(OPTIONS)}"
                    )
                value = literal(kw.value, f"option `{kw.arg}` of `{fn}`")
                if not isinstance(value, OPTIONS[kw.arg]) or isinstance(value, bool):
                    raise Refused(
                        f"line {kw.value.lineno}: option `{kw.arg}` of `{fn}` is {value!r}; "
                        f"it must be a {getattr(OPTIONS[kw.arg], '__name__', 'number')}"
                    )
                options[kw.arg] = value
        mounts = options.get("mounts", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in mounts.items()):
            raise Refused(f"{where}: mounts maps guest paths to volume names, both strings")
        volumes |= set(mounts.values()) | set(options.get("volumes", []))
        dicts |= set(options.get("dicts", []))
        functions[wit_fn] = options
        args = ", ".join(f"{k}: {w}" for _, k, w, _ in params)
        sig = f"func({args})" + (f" -> {wit_result}" if wit_result else "")
        exports.append((fn, wit_fn, sig, params, result_spec))
    if not exports:
        raise Refused(
            "no function is decorated with @vessel.function: mark the functions to export, "
            "as in Modal (`@vessel.function()` above `def main(name: str) -> str:`)"
        )

    # The world.
    wit = [f"package local:{name};", "", f"world {name} {{", "    include vessel:storage/imports@0.1.0;"]
    for cls in types.order:
        wit += ["", types.records[cls]]
    wit.append("")
    for _, wit_fn, sig, _, _ in exports:
        wit.append(f"    export {wit_fn}: {sig};")
    wit.append("}")
    with open(f"{work}/wit/world.wit", "w", encoding="utf-8") as f:
        f.write("\n".join(wit) + "\n")

    # The exports.
    py = [
        "# Written by vessel's build from the app's decorated functions: each",
        "# export converts its arguments to the hinted types, calls the app's",
        "# function and converts the result back.",
        "import wit_world",
        "",
        f"import {module} as _app",
        "from vessel._app import from_wit as _from_wit, to_wit as _to_wit",
        "",
        "",
        "class WitWorld(wit_world.WitWorld):",
    ]
    for fn, _, _, params, result_spec in exports:
        names_ = [p for p, _, _, _ in params]
        py.append(f"    def {fn}(self{''.join(', ' + n for n in names_)}):")
        call_args = []
        defaulted = []
        for p, _, _, spec in params:
            if isinstance(spec, tuple) and spec[0] == "default":
                value = p if identity(spec[1]) else f"_from_wit({spec[1]!r}, {p}, _app)"
                defaulted.append(f"**({{}} if {p} is None else {{{p!r}: {value}}})")
            else:
                call_args.append(p if identity(spec) else f"_from_wit({spec!r}, {p}, _app)")
        call = f"_app.{fn}({', '.join(call_args + defaulted)})"
        if identity(result_spec):
            py.append(f"        return {call}")
        else:
            py.append(f"        return _to_wit({result_spec!r}, {call}, wit_world)")
        py.append("")
    with open(f"{work}/app/_vessel_exports.py", "w", encoding="utf-8") as f:
        f.write("\n".join(py))

    # The manifest.
    def toml_value(v: object) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)

    out = [
        f"# Written by vessel's build from {module}.py: edit the decorators there.",
        "[app]",
        f'name = "{name}"',
    ]
    if "main" in functions:
        out.append('entrypoint = "main"')
    for v in sorted(volumes):
        out += ["", f"[volumes.{json.dumps(v)}]", "create_if_missing = true"]
    for d in sorted(dicts):
        out += ["", f"[dicts.{json.dumps(d)}]", "create_if_missing = true"]
    for wit_fn, options in functions.items():
        out += ["", f"[functions.{json.dumps(wit_fn.lstrip('%'))}]", f"component = {json.dumps(component)}"]
        out += [f"{k} = {toml_value(v)}" for k, v in options.items()]
    with open(manifest, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    try:
        main()
    except Refused as e:
        print(f"build-python: {sys.argv[1]}: {e}", file=sys.stderr)
        sys.exit(2)
