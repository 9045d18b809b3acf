"""Storage code written once against `vessel.Dict` and `vessel.Volume`,
using only what both the guest SDK and vessel-client offer. It runs
unchanged inside a Python guest and on a host; `exercise(tag)` returns one
JSON text of everything it saw, which must be the same both ways."""

import json

import vessel


def exercise(tag: str) -> str:
    out = []
    d = vessel.Dict.from_name(f"both-{tag}", create_if_missing=True)
    d["a"] = {"x": [1, 2.5, None, True], "s": "héllo", "z": 1, "b": 2}
    out.append(d["a"])
    out.append(d.get("missing", "default"))
    try:
        d["missing"]
    except KeyError as e:
        out.append(f"KeyError {e}")
    out.append([d.put("once", 1, if_absent=True), d.put("once", 2, if_absent=True), d["once"]])
    v = d.get_versioned("once")
    out.append(d.put("once", 3, if_version=v.version))
    try:
        d.put("once", 4, if_version=v.version)
    except vessel.PreconditionFailed:
        out.append("cas refused")
    out.append(d["once"])
    out.append([d.increment("n"), d.increment("n", 41), d["n"]])
    out.append(["a" in d, "zz" in d, 7 in d])
    d.update({"k1": 1, "k2": [2]}, k3="three")
    out.append(d.get_many(["k1", "nope", "k3"], default="-"))
    out.append(len(d))
    out.append(list(d.keys()))
    out.append(list(d.items(prefix="k")))
    out.append(list(d.values(prefix="k")))
    out.append([d.pop("k1"), d.pop("k1", "gone")])
    del d["k2"]
    try:
        del d["k2"]
    except KeyError:
        out.append("del KeyError")
    with d.lock("job", ttl_ms=10_000) as lease:
        out.append([lease.key, d.lock("job") is None])
    again = d.lock("job")
    out.append(again is not None and again.token > lease.token)
    again.release()
    raw = d.raw
    raw["bin"] = b"\x00\xffdata"
    out.append(raw["bin"].hex())
    try:
        d["bin"]
    except vessel.CodecError:
        out.append("CodecError")
    d.clear()
    out.append(len(d))
    try:
        vessel.Dict.from_name(f"none-{tag}")
    except vessel.NotFound:
        out.append("NotFound dict")

    vol = vessel.Volume.from_name(f"both-{tag}", create_if_missing=True)
    vol.write_file("docs/a.txt", "hello")
    vol.write_file("docs/b.bin", b"\x01\x02")
    try:
        vol.write_file("docs/a.txt", "again")
    except vessel.AlreadyExists:
        out.append("AlreadyExists")
    vol.write_file("docs/a.txt", "hello again", overwrite=True)
    out.append(vol.read_file("docs/a.txt").decode())
    out.append([c.decode() for c in vol.iter_file("docs/a.txt", 4)])
    out.append(vol.read_range("docs/a.txt", 6, 5).decode())
    vol.copy("docs/a.txt", "copy.txt")
    out.append(sorted((e.path, e.type.value, e.size) for e in vol.listdir("/")))
    out.append(sorted((e.path, e.type.value, e.size) for e in vol.iterdir("/")))
    vol.remove_file("docs/b.bin")
    try:
        vol.remove("docs")
    except vessel.Error:
        # Refused: not empty (the two sides may name the case differently).
        out.append("not empty")
    vol.remove("docs", recursive=True)
    try:
        vol.read_file("docs/a.txt")
    except vessel.NotFound:
        out.append("NotFound file")
    out.append(sorted(e.path for e in vol.listdir("/", recursive=True)))
    return json.dumps(out, ensure_ascii=False)
