"""Exercises the vessel Python SDK; tests/it/python.rs checks the output."""

import io

import wit_world

import vessel


def show(label, fn):
    """Prints what `fn()` returns, or the vessel exception it raises."""
    try:
        print(label, repr(fn()))
    except (vessel.Error, KeyError, TypeError) as e:
        print(label, f"{type(e).__name__}: {e}")


class Overdrawn(Exception):
    """The app's own exception type, which callers get as RemoteError."""


class WitWorld(wit_world.WitWorld):
    def dict_api(self) -> None:
        d = vessel.Dict.from_name("kv", create_if_missing=True)
        d.clear()
        print(repr(d))
        d["a"] = 1
        d["b"] = {"x": [1, 2.5, None, True], "s": "héllo"}
        print(d["a"], d["b"])
        show("missing", lambda: d["missing"])
        print(d.get("missing"), d.get("missing", 7))
        print("a" in d, "missing" in d, 3 in d, len(d), d.len(), d.contains("b"))
        print(d.put("a", 2, skip_if_exists=True), d["a"])
        print(d.put("c", 3, skip_if_exists=True), d["c"])
        print(d.pop("c"), d.pop("c", "gone"))
        show("pop", lambda: d.pop("c"))
        del d["a"]

        def delete():
            del d["a"]

        show("del", delete)
        d.update({"k1": 1, "k2": 2}, k3=3)
        d.update([("k4", 4)])
        print(list(d.keys()), list(d.values()))
        print(list(d.items("k")), list(d))
        v = d.get_versioned("k1")
        print(d.put("k1", 10, if_version=v.version), d["k1"])
        show("cas", lambda: d.put("k1", 11, if_version=v.version))
        print(d.increment("n"), d.increment("n", 41), d["n"])
        print(d.get_many(["k1", "zz", "k2"], default="-"))
        lease = d.lock("job", 60_000)
        print(lease.key, lease.token > 0, d.lock("job") is None)
        with lease:
            pass
        again = d.lock("job")
        print(again is not None and again.token > lease.token)
        again.release()
        d.update({f"p/{i:05}": i for i in range(2500)})
        keys = list(d.keys("p/"))
        print(len(keys), keys[0], keys[-1], sum(v for _, v in d.items("p/")))
        print(d.limits().max_update_entries)
        d.clear()
        print(len(d))
        show("int key", lambda: d.__setitem__(5, 1))
        show("nan", lambda: d.__setitem__("x", float("nan")))
        show("object", lambda: d.__setitem__("x", object()))
        d["for-cli"] = {"list": [1, "two"], "n": None}

    def raw_values(self) -> None:
        r = vessel.Dict.from_name("raw", create_if_missing=True, raw=True)
        r["blob"] = b"\x00\xffbytes"
        print(r["blob"], r.get("nothing", b"-"))
        j = vessel.Dict.from_name("raw")
        show("json read of bytes", lambda: j["blob"])
        print(j.raw["blob"] == r["blob"])
        show("str in raw", lambda: r.__setitem__("s", "text"))
        j["json"] = [1, "x"]
        print(r["json"], list(r.raw.items("j")))

    def volume_api(self) -> None:
        v = vessel.Volume.from_name("objects", create_if_missing=True)
        print(v.name, v.version)
        v.write_file("a/b.txt", "hello")
        v.write_file("a/c.bin", b"\x01\x02")
        show("exists", lambda: v.write_file("a/b.txt", "again"))
        v.write_file("a/b.txt", "hello, again", overwrite=True)
        print([(e.path, e.type.value, e.size) for e in v.listdir("a")])
        print(v.read_file("a/b.txt"), v.read_range("a/b.txt", 7, 5))
        print(list(v.iter_file("a/b.txt", chunk_size=5)))
        buf = io.BytesIO()
        print(v.read_file_into_fileobj("a/c.bin", buf), buf.getvalue())
        v.copy("a/b.txt", "copy.txt")
        v.write_file("dir/.keep", b"")
        v.copy(["a/b.txt", "a/c.bin"], "dir")
        print(sorted(e.path for e in v.iterdir("/") if e.type == vessel.FileEntryType.FILE))
        v.remove("copy.txt")
        show("non-empty", lambda: v.remove("a"))
        v.remove_file("dir", recursive=True)
        show("gone", lambda: v.read_file("copy.txt"))
        print(v.commit())
        print(v.version, repr(v))

    def mount_api(self) -> None:
        vol = vessel.Volume.mounted("/data")
        with open("/data/x.txt", "w") as f:
            f.write("x")
        print(vol.commit())
        f = open("/data/x.txt")
        show("reload while open", vol.reload)
        try:
            vol.reload()
        except vessel.Busy as e:
            print(e.paths, isinstance(e, vessel.Error))
        f.close()
        print(vol.reload(), vol.version)
        show("not mounted", lambda: vessel.Volume.mounted("/elsewhere"))

    def versions_api(self) -> None:
        v = vessel.Volume.from_name("versioned", create_if_missing=True)
        v.write_file("a.txt", "one")
        v.write_file("a.txt", "two", overwrite=True)
        v.write_file("b.txt", "bee")
        h = v.history(limit=2)
        print(h.head, h.oldest, [(x.version, x.changed, x.removed) for x in h.versions])
        old = vessel.Volume.from_name("versioned", version=1)
        print(old.version, old.read_file("a.txt"))
        show("write at a version", lambda: old.write_file("c.txt", "x"))
        print([(d.path, d.change.value, d.size_before, d.size_after) for d in v.diff(1)])
        print([(d.path, d.change.value) for d in v.diff(1, 2)], v.diff(3, 3))
        f = old.fork("versioned-fork")
        print(f.name, f.version, [e.path for e in f.listdir("/")])
        # Writes to the fork leave the source alone, and the other way round.
        f.write_file("a.txt", "forked", overwrite=True)
        v.write_file("c.txt", "sea")
        print(f.version, f.read_file("a.txt"), [e.path for e in f.listdir("/")])
        print(v.version, v.read_file("a.txt"), old.read_file("a.txt"))
        show("missing version", lambda: vessel.Volume.from_name("versioned", version=99))
        show("version and create", lambda: vessel.Volume.from_name("versioned", True, version=1))

    def conflict_api(self) -> None:
        vol = vessel.Volume.mounted("/data")
        with open("/data/f.txt", "w") as f:
            f.write("mine")
        # Another container commits the same file meanwhile.
        vessel.remote("other-writer")
        try:
            vol.commit(conflicts="fail")
        except vessel.Conflict as e:
            print("conflict", e.paths, e.head, isinstance(e, vessel.PreconditionFailed))
            theirs = vessel.Volume.from_name("contested", version=e.head).read_file("f.txt")
            with open("/data/f.txt", "w") as f:
                f.write("mine+" + theirs.decode())
        print(vol.commit(conflicts="fail"))
        print(open("/data/f.txt").read())
        show("bad policy", lambda: vol.commit(conflicts="maybe"))
        # Again, now through the mount's own policy: a plain commit refuses,
        # last-writer-wins overwrites theirs.
        with open("/data/f.txt", "w") as f:
            f.write("mine again")
        vessel.remote("other-writer")
        show("plain commit", vol.commit)
        print(vol.commit(conflicts="last-writer-wins"))

    def other_writer(self) -> None:
        vol = vessel.Volume.mounted("/data")
        vol.reload()
        with open("/data/f.txt", "w") as f:
            f.write("theirs")
        vol.commit()

    def calls(self) -> None:
        print(vessel.remote("square", 7))
        print(vessel.remote("add", 2, 3), vessel.remote("add", a=2, b=3))
        c = vessel.spawn("square", 9)
        print(c.get(), c.get(), repr(c))
        print(vessel.map("square", [1, 2, 3]))
        print(vessel.starmap("add", [(1, 2), (3, 4)]))
        print(vessel.map("add", [1, 2], [10, 20]))
        # What a callee raises is raised here: a builtin type as itself,
        # with the callee's traceback as a note; the app's own as
        # RemoteError.
        try:
            vessel.remote("fail")
        except ValueError as e:
            notes = getattr(e, "__notes__", [])
            print(
                "ValueError",
                e,
                type(e.remote).__name__,
                e.remote.type,
                ", in fail" in e.remote.traceback,
                any("raised in the called function" in n for n in notes),
            )
        try:
            vessel.remote("fail-custom")
        except vessel.RemoteError as e:
            print("RemoteError", e.type, e.message, isinstance(e, vessel.CallFailed), e.detail)
        c = vessel.spawn("lookup", "never-set")
        for _ in range(2):
            try:
                c.get()
            except KeyError as e:
                print("spawned KeyError", repr(e))
        show("unknown", lambda: vessel.remote("nope"))
        show("both", lambda: vessel.remote("add", 1, b=2))

    def errors(self) -> None:
        for what, fn in [
            ("ungranted dict", lambda: vessel.Dict.from_name("secret")),
            ("missing dict", lambda: vessel.Dict.from_name("kv-missing")),
            ("bad name", lambda: vessel.Dict.from_name("bad/name", create_if_missing=True)),
            ("ungranted volume", lambda: vessel.Volume.from_name("ghost")),
        ]:
            try:
                fn()
            except vessel.Error as e:
                print(what, type(e).__name__, isinstance(e, vessel.Error), e)
        try:
            vessel.Dict.from_name("bad/name", create_if_missing=True)
        except ValueError as e:
            print("InvalidArgument is a ValueError:", e.detail)

    def square(self, x: int) -> int:
        return x * x

    def add(self, a: int, b: int) -> int:
        return a + b

    def fail(self) -> None:
        raise ValueError("boom")

    def fail_custom(self) -> None:
        raise Overdrawn("balance below zero")

    def lookup(self, key: str) -> str:
        return vessel.Dict.from_name("kv", create_if_missing=True)[key]
