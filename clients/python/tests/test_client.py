"""vessel-client against a real `vessel serve` (started by
tests/it/python_client.rs, which sets the environment):

- VESSEL_URL, VESSEL_TOKEN: the server and a token with every scope;
- VESSEL_TEST_READ_TOKEN: a token that may only read dicts;
- VESSEL_TEST_HOME: the server's data dir (its owner socket);
- VESSEL_TEST_APP: an app with `square(x)` and `fail(message)`.
"""

from __future__ import annotations

import datetime
import io
import os
import tempfile
import threading
import time
import unittest
import uuid
from pathlib import Path

import vessel


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Dicts(unittest.TestCase):
    def setUp(self) -> None:
        self.d = vessel.Dict.from_name(fresh("d"), create_if_missing=True)

    def test_mapping_protocol(self) -> None:
        d = self.d
        d["a"] = {"z": 1, "a": [1, 2.5, None, True], "s": "héllo"}
        self.assertEqual(list(d["a"]), ["z", "a", "s"], "object key order is kept")
        self.assertEqual(d["a"]["s"], "héllo")
        with self.assertRaises(KeyError):
            d["missing"]
        self.assertEqual(d.get("missing", 7), 7)
        self.assertIn("a", d)
        self.assertNotIn("b", d)
        self.assertEqual(len(d), 1)
        del d["a"]
        with self.assertRaises(KeyError):
            del d["a"]
        self.assertEqual(len(d), 0)
        self.assertEqual(d.pop("a", "gone"), "gone")
        with self.assertRaises(KeyError):
            d.pop("a")

    def test_conditional_puts(self) -> None:
        d = self.d
        self.assertTrue(d.put("k", 1, if_absent=True))
        self.assertFalse(d.put("k", 2, if_absent=True))
        self.assertEqual(d["k"], 1)
        v = d.get_versioned("k")
        assert v is not None
        self.assertTrue(d.put("k", 3, if_version=v.version))
        with self.assertRaises(vessel.PreconditionFailed) as e:
            d.put("k", 4, if_version=v.version)
        self.assertGreater(e.exception.current_version or 0, v.version)
        self.assertEqual(e.exception.status, 412)
        self.assertEqual(d["k"], 3)

    def test_increment_update_get_many(self) -> None:
        d = self.d
        self.assertEqual(d.increment("n"), 1)
        self.assertEqual(d.increment("n", 41), 42)
        self.assertEqual(d.increment("n", -2), 40)
        self.assertEqual(d["n"], 40)
        d.update({"x": 1, "y": {"b": 1, "a": 2}}, z="three")
        self.assertEqual(d.get_many(["x", "nope", "z"], default="-"), [1, "-", "three"])
        self.assertEqual(list(d.get_many(["y"])[0]), ["b", "a"])
        d["text"] = "not a number"
        with self.assertRaises(vessel.InvalidArgument):
            d.increment("text")

    def test_ttl_expires(self) -> None:
        d = self.d
        d.put("short", "soon gone", ttl=0.3)
        d.put("long", "stays", ttl=60)
        self.assertEqual(d["short"], "soon gone")
        time.sleep(0.8)
        with self.assertRaises(KeyError):
            d["short"]
        self.assertEqual(d["long"], "stays")

    def test_leases_and_fencing(self) -> None:
        d = self.d
        with d.lock("job", ttl_ms=10_000) as lease:
            self.assertIsNone(d.lock("job"), "a held lock is not taken twice")
            lease.renew(10_000)
        short = d.lock("job", ttl_ms=100)
        assert short is not None
        self.assertGreater(short.token, lease.token)
        time.sleep(0.3)
        taker = d.lock("job", ttl_ms=10_000)
        assert taker is not None
        with self.assertRaises(vessel.PreconditionFailed):
            short.renew(1_000)  # expired, and someone else holds it now
        short.release()  # a stale release is not an error...
        self.assertIsNone(d.lock("job"), "...and does not free the new holder's lock")
        taker.release()
        self.assertIsNotNone(d.lock("job"))

    def test_raw_values(self) -> None:
        raw = self.d.raw
        raw["bin"] = b"\x00\xff\x10"
        raw["text"] = b'{"k": 1}'
        self.assertEqual(raw["bin"], b"\x00\xff\x10")
        self.assertEqual(raw.get_many(["text", "bin"]), [b'{"k": 1}', b"\x00\xff\x10"])
        self.assertEqual(dict(raw.items()), {"bin": b"\x00\xff\x10", "text": b'{"k": 1}'})
        raw.update({"u": b"\x01"})
        self.assertEqual(raw.pop("u"), b"\x01")
        with self.assertRaises(vessel.CodecError):
            self.d["bin"]
        with self.assertRaises(TypeError):
            raw["s"] = "not bytes"

    def test_items_page_in_key_order(self) -> None:
        d = self.d
        d.update({f"k{i:05}": i for i in range(2500)})
        keys = list(d.keys())
        self.assertEqual(keys, [f"k{i:05}" for i in range(2500)])
        self.assertEqual(sum(v for _, v in d.items()), sum(range(2500)))
        self.assertEqual(len(list(d.items(prefix="k001"))), 100)

    def test_large_values_are_fetched_by_key(self) -> None:
        d = self.d.raw
        big = os.urandom(3 << 20)
        d["big"] = big
        d["small"] = b"s"
        got = dict(d.items())
        self.assertEqual(got["big"], big)
        self.assertEqual(got["small"], b"s")

    def test_clear_and_errors(self) -> None:
        d = self.d
        d["a"] = 1
        d.clear()
        self.assertEqual(len(d), 0)
        with self.assertRaises(vessel.NotFound):
            vessel.Dict.from_name(fresh("none"))
        with self.assertRaises(TypeError):
            d[1] = 2  # type: ignore[index]
        with self.assertRaises(vessel.CodecError):
            d["nan"] = float("nan")
        with self.assertRaises(vessel.TooLarge):
            d.update({f"k{i}": i for i in range(10_001)})
        name = fresh("gone")
        vessel.Dict.from_name(name, create_if_missing=True)
        vessel.Dict.delete(name)
        with self.assertRaises(vessel.NotFound):
            vessel.Dict.from_name(name)["k"]


class Volumes(unittest.TestCase):
    def setUp(self) -> None:
        self.v = vessel.Volume.from_name(fresh("v"), create_if_missing=True)

    def test_files(self) -> None:
        v = self.v
        version = v.write_file("a/b.txt", "hello")
        self.assertEqual(v.version, version)
        self.assertEqual(v.read_file("/a/b.txt"), b"hello")
        with self.assertRaises(vessel.AlreadyExists):
            v.write_file("a/b.txt", "again")
        v.write_file("a/b.txt", b"hello again", overwrite=True)
        self.assertEqual(v.read_range("a/b.txt", 6, 100), b"again")
        self.assertEqual(v.read_range("a/b.txt", 100, 5), b"")
        v.copy_files(["a/b.txt"], "c.txt")
        self.assertEqual(v.read_file("c.txt"), b"hello again")
        self.assertEqual(
            [(e.path, e.type) for e in v.listdir("/")],
            [("a", vessel.FileEntryType.DIRECTORY), ("c.txt", vessel.FileEntryType.FILE)],
        )
        v.remove_file("c.txt")
        with self.assertRaises(vessel.NotFound):
            v.read_file("c.txt")
        with self.assertRaises(vessel.InvalidArgument):
            v.remove("a")  # a directory, without recursive
        v.remove("a", recursive=True)
        self.assertEqual(v.listdir("/", recursive=True), [])

    def test_streaming_reads_and_writes(self) -> None:
        v = self.v
        data = os.urandom((5 << 20) + 123)
        v.write_file("big.bin", io.BytesIO(data))
        chunks = list(v.iter_file("big.bin", chunk_size=1 << 20))
        self.assertGreater(len(chunks), 4)
        self.assertEqual(b"".join(chunks), data)
        sink = io.BytesIO()
        self.assertEqual(v.read_file_into_fileobj("big.bin", sink), len(data))
        self.assertEqual(sink.getvalue(), data)
        # An abandoned stream does not break the next request.
        it = v.iter_file("big.bin", chunk_size=1024)
        next(it)
        it.close()
        self.assertEqual(v.read_range("big.bin", 0, 4), data[:4])

    def test_batch_upload_and_paged_listing(self) -> None:
        v = self.v
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "sub").mkdir()
            for i in range(1200):
                (root / "sub" / f"f{i:04}.txt").write_text(str(i))
            (root / "one.bin").write_bytes(b"\x01" * 10)
            with v.batch_upload() as batch:
                batch.put_directory(root / "sub", "/data")
                batch.put_file(root / "one.bin", "/one.bin")
                batch.put_file(io.BytesIO(b"from memory"), "/mem.txt")
            with self.assertRaises(vessel.AlreadyExists):
                with v.batch_upload() as batch:
                    batch.put_file(root / "one.bin", "/one.bin")
            with v.batch_upload(force=True) as batch:
                batch.put_file(root / "one.bin", "/one.bin")
        entries = list(v.iterdir("/data"))
        self.assertEqual([e.path for e in entries], [f"data/f{i:04}.txt" for i in range(1200)])
        self.assertEqual(v.read_file("data/f0042.txt"), b"42")
        self.assertEqual(v.read_file("mem.txt"), b"from memory")
        self.assertEqual([e.path for e in v.listdir("/")], ["data", "mem.txt", "one.bin"])


class VolumeHistory(unittest.TestCase):
    def setUp(self) -> None:
        self.name = fresh("h")
        self.v = vessel.Volume.from_name(self.name, create_if_missing=True)
        v = self.v
        self.v1 = v.write_file("a.txt", "one")
        self.v2 = v.write_file("b.txt", "bee")
        self.v3 = v.write_file("a.txt", "three", overwrite=True)
        v.remove("b.txt")
        self.v4 = v.version

    def test_history(self) -> None:
        h = self.v.history()
        self.assertEqual(h.head, self.v4)
        self.assertLessEqual(h.oldest, self.v1)
        self.assertEqual([x.version for x in h.versions], [self.v4, self.v3, self.v2, self.v1])
        self.assertEqual((h.versions[0].changed, h.versions[0].removed), (0, 1))
        self.assertEqual(h.versions[1].bytes_added, 5)
        self.assertLess(abs(h.versions[0].time.timestamp() - time.time()), 300)
        self.assertEqual(len(self.v.history(limit=2).versions), 2)
        with self.assertRaises(vessel.InvalidArgument):
            self.v.history(limit=0)

    def test_reading_a_version(self) -> None:
        for old in (
            vessel.Volume.from_name(self.name, version=self.v2),
            vessel.Volume.from_name(f"{self.name}@{self.v2}"),
        ):
            self.assertEqual((old.name, old.version, old.read_only), (self.name, self.v2, True))
            self.assertEqual(old.read_file("a.txt"), b"one")
            self.assertEqual(b"".join(old.iter_file("b.txt")), b"bee")
            self.assertEqual(old.read_range("b.txt", 1, 10), b"ee")
            self.assertEqual([e.path for e in old.listdir("/")], ["a.txt", "b.txt"])
        self.assertEqual(self.v.read_file("a.txt"), b"three")
        with self.assertRaises(vessel.NotFound):
            self.v.read_file("b.txt")
        with self.assertRaises(vessel.NotFound) as e:
            vessel.Volume.from_name(self.name, version=self.v4 + 100)
        self.assertIn(str(self.v4), e.exception.detail)
        with self.assertRaises(vessel.InvalidArgument):
            vessel.Volume.from_name(f"{self.name}@1", version=2)

    def test_a_version_handle_refuses_writes(self) -> None:
        old = vessel.Volume.from_name(self.name, version=self.v1)
        for write in (
            lambda: old.write_file("c.txt", "x", overwrite=True),
            lambda: old.remove("a.txt"),
            lambda: old.copy("a.txt", "d.txt"),
            lambda: old.batch_upload(),
            lambda: old.restore(self.v1),
            lambda: old.set_retention(0),
        ):
            with self.assertRaises(vessel.InvalidArgument) as e:
                write()
            self.assertEqual(e.exception.status, 0, "refused before any request")
        with self.assertRaises(vessel.InvalidArgument):
            vessel.Volume.from_name(self.name, create_if_missing=True, version=self.v1)
        self.assertEqual(self.v.version, self.v4, "nothing was committed")

    def test_diff(self) -> None:
        v = self.v
        self.assertEqual(
            v.diff(self.v1),
            [vessel.DiffEntry("a.txt", vessel.DiffChange.MODIFIED, vessel.FileEntryType.FILE, 3, 5)],
        )
        added = v.diff(self.v1, self.v2)
        self.assertEqual(
            added, [vessel.DiffEntry("b.txt", vessel.DiffChange.ADDED, vessel.FileEntryType.FILE, None, 3)]
        )
        # A handle at a version diffs up to that version.
        self.assertEqual(vessel.Volume.from_name(self.name, version=self.v2).diff(self.v1), added)
        self.assertEqual(
            [(e.path, e.change) for e in v.diff(self.v2)],
            [("a.txt", vessel.DiffChange.MODIFIED), ("b.txt", vessel.DiffChange.REMOVED)],
        )
        with self.assertRaises(vessel.NotFound):
            v.diff(self.v4 + 100)

    def test_restore(self) -> None:
        v = self.v
        version = v.restore(self.v2)
        self.assertGreater(version, self.v4)
        self.assertEqual(v.version, version)
        self.assertEqual(v.read_file("a.txt"), b"one")
        self.assertEqual(v.read_file("b.txt"), b"bee")
        self.assertEqual(
            vessel.Volume.from_name(self.name, version=self.v4).listdir("/")[0].path, "a.txt"
        )

    def test_fork(self) -> None:
        head = self.v.fork(fresh("f"))
        self.assertEqual(head.version, 1)
        self.assertEqual(head.read_file("a.txt"), b"three")
        old = vessel.Volume.from_name(self.name, version=self.v2).fork(fresh("f"))
        self.assertEqual(sorted(e.path for e in old.listdir("/")), ["a.txt", "b.txt"])
        self.assertEqual(old.read_file("a.txt"), b"one")
        # Each side changes on its own.
        old.write_file("c.txt", "only in the fork")
        self.v.write_file("a.txt", "only in the source", overwrite=True)
        self.assertEqual(old.read_file("a.txt"), b"one")
        with self.assertRaises(vessel.NotFound):
            self.v.read_file("c.txt")
        with self.assertRaises(vessel.AlreadyExists):
            self.v.fork(old.name)
        with self.assertRaises(vessel.Busy):
            vessel.Volume.delete(self.name)
        vessel.Volume.delete(old.name)
        vessel.Volume.delete(head.name)

    def test_retention(self) -> None:
        v = self.v
        v.set_retention(datetime.timedelta(hours=1))
        h = v.history()
        self.assertEqual(h.retention_ms, 3_600_000)
        self.assertEqual(h.retention, datetime.timedelta(hours=1))
        v.set_retention(90.5)
        self.assertEqual(v.history().retention_ms, 90_500)
        with self.assertRaises(vessel.InvalidArgument):
            v.set_retention(-1)

    def test_if_version(self) -> None:
        v = self.v
        read_at = v.version
        # Nothing changed a.txt since: it is replaced without overwrite.
        mine = v.write_file("a.txt", "mine", if_version=read_at)
        self.assertEqual(mine, read_at + 1)
        # A later commit to another path is no conflict.
        v.write_file("c.txt", io.BytesIO(b"sea"), if_version=read_at)
        # A writer that read a.txt before `mine` loses.
        with self.assertRaises(vessel.PreconditionFailed) as e:
            v.write_file("a.txt", "stale", if_version=read_at)
        self.assertEqual(e.exception.status, 412)
        self.assertIn("a.txt", e.exception.detail)
        self.assertEqual(v.read_file("a.txt"), b"mine")
        self.assertEqual(v.read_file("c.txt"), b"sea")


class Functions(unittest.TestCase):
    def setUp(self) -> None:
        self.app = os.environ["VESSEL_TEST_APP"]

    def test_remote_spawn_map(self) -> None:
        square = vessel.Function.from_name(self.app, "square")
        self.assertEqual(square.remote(7), 49)
        self.assertEqual(square.remote(x=8), 64)
        call = square.spawn(9)
        self.assertEqual(call.get(timeout=60), 81)
        self.assertEqual(vessel.FunctionCall.from_id(call.object_id).get(), 81)
        self.assertEqual(list(square.map(range(20))), [i * i for i in range(20)])
        self.assertEqual(sorted(square.map(range(5), order_outputs=False)), [0, 1, 4, 9, 16])
        self.assertEqual(list(square.starmap([(2,), (3,)])), [4, 9])

    def test_failures(self) -> None:
        fail = vessel.Function.from_name(self.app, "fail")
        # What the function raised is raised here: ValueError as itself,
        # with the function's traceback attached.
        with self.assertRaises(ValueError) as e:
            fail.remote("boom")
        self.assertEqual(str(e.exception), "boom")
        self.assertIsInstance(e.exception.remote, vessel.RemoteError)
        self.assertIsInstance(e.exception.remote, vessel.CallFailed)
        self.assertEqual(e.exception.remote.type, "ValueError")
        self.assertIn("ValueError: boom", e.exception.remote.traceback)
        self.assertEqual(e.exception.remote.status, 422)
        with self.assertRaises(ValueError) as e:
            fail.spawn("boom").get(timeout=60)
        self.assertEqual(str(e.exception), "boom")
        with self.assertRaises(vessel.NotFound):
            vessel.Function.from_name(self.app, "no-such-function").remote()
        with self.assertRaises(TypeError):
            vessel.Function.from_name(self.app, "square").remote(1, x=2)


class Connections(unittest.TestCase):
    def test_tokens_are_checked(self) -> None:
        bad = vessel.Client(os.environ["VESSEL_URL"], "not-a-token")
        with self.assertRaises(vessel.Unauthorized) as e:
            vessel.Dict.from_name("anything", create_if_missing=True, client=bad)
        self.assertEqual(e.exception.status, 401)
        name = fresh("ro")
        vessel.Dict.from_name(name, create_if_missing=True)["k"] = 1
        ro = vessel.Client(os.environ["VESSEL_URL"], os.environ["VESSEL_TEST_READ_TOKEN"])
        d = vessel.Dict.from_name(name, client=ro)
        self.assertEqual(d["k"], 1)
        with self.assertRaises(vessel.AccessDenied):
            d["k"] = 2

    def test_owner_socket(self) -> None:
        sock = Path(os.environ["VESSEL_TEST_HOME"]) / "run" / "vessel.sock"
        local = vessel.Client(socket=sock)
        name = fresh("sock")
        d = vessel.Dict.from_name(name, create_if_missing=True, client=local)
        d["via"] = "socket"
        self.assertEqual(vessel.Dict.from_name(name)["via"], "socket")
        # from_env finds the socket through VESSEL_HOME when VESSEL_URL is unset.
        saved = {k: os.environ.pop(k) for k in ("VESSEL_URL", "VESSEL_TOKEN")}
        try:
            os.environ["VESSEL_HOME"] = os.environ["VESSEL_TEST_HOME"]
            c = vessel.Client.from_env()
            self.assertTrue(c.where.startswith("unix:"))
            self.assertEqual(vessel.Dict.from_name(name, client=c)["via"], "socket")
        finally:
            os.environ.update(saved)

    def test_threads_share_a_client(self) -> None:
        d = vessel.Dict.from_name(fresh("t"), create_if_missing=True)
        errors = []

        def work() -> None:
            try:
                for _ in range(50):
                    d.increment("n")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(d["n"], 400)

    def test_unreachable_server(self) -> None:
        c = vessel.Client("http://127.0.0.1:9", None, timeout=5)
        with self.assertRaises(vessel.ConnectError):
            vessel.Dict.from_name("x", client=c)


if __name__ == "__main__":
    unittest.main()
