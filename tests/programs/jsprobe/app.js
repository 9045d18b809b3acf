// Exercises the vessel JavaScript SDK; tests/it/javascript.rs checks the
// output.
import {
  AccessDenied,
  Busy,
  CallFailed,
  Conflict,
  Dict,
  NotFound,
  PreconditionFailed,
  RemoteError,
  VesselError,
  Volume,
  map,
  remote,
  spawn,
} from "./vessel.js";

// Prints what `fn()` returns, or the error it throws.
function show(label, fn) {
  try {
    console.log(label, JSON.stringify(fn()));
  } catch (e) {
    console.log(label, `${e.name}: ${e.message}`);
  }
}

export function dictApi() {
  const d = Dict.fromName("kv", { createIfMissing: true });
  d.clear();
  d.set("a", 1).set("b", { x: [1, 2.5, null, true], s: "héllo" });
  console.log(d.name, JSON.stringify(d.get("a")), JSON.stringify(d.get("b")));
  console.log(d.get("missing"), d.get("missing", 7), d.has("a"), d.has("missing"));
  console.log(d.len(), d.size);
  console.log(d.put("a", 2, { skipIfExists: true }), d.get("a"));
  console.log(d.put("c", 3, { skipIfExists: true }), d.pop("c"), d.pop("c", "gone"));
  console.log(d.delete("a"), d.delete("a"));
  d.update({ k1: 1, k2: 2 });
  d.update([["k3", 3]]);
  d.update(new Map([["k4", 4]]));
  console.log(JSON.stringify([...d.keys()]), JSON.stringify([...d.values("k")]));
  console.log(JSON.stringify([...d.items("k")]), JSON.stringify([...d].length));
  const v = d.getVersioned("k1");
  console.log(d.put("k1", 10, { ifVersion: v.version }), d.get("k1"));
  show("cas", () => d.put("k1", 11, { ifVersion: v.version }));
  console.log(d.increment("n"), d.increment("n", 41), d.get("n"));
  const lease = d.lock("job", 60000);
  console.log(lease.key, lease.token > 0, d.lock("job") === undefined);
  lease.release();
  const big = {};
  for (let i = 0; i < 2500; i++) big[`p/${String(i).padStart(5, "0")}`] = i;
  d.update(big);
  const keys = [...d.keys("p/")];
  let sum = 0;
  for (const [, n] of d.items("p/")) sum += n;
  console.log(keys.length, keys[0], keys[keys.length - 1], sum);
  d.clear();
  console.log(d.len());
  show("number key", () => d.set(5, 1));
  show("bigint", () => d.set("x", 1n));
  show("undefined", () => d.set("x", undefined));
  const raw = d.raw;
  raw.set("blob", new Uint8Array([0, 255, 98]));
  console.log(JSON.stringify([...raw.get("blob")]));
  show("json read of bytes", () => d.get("blob"));
  show("string in raw", () => raw.set("s", "text"));
  d.set("for-cli", { list: [1, "two"], n: null });
}

export function volumeApi() {
  const v = Volume.fromName("objects", { createIfMissing: true });
  console.log(v.name, v.version);
  v.writeFile("a/b.txt", "hello");
  v.writeFile("a/c.bin", new Uint8Array([1, 2]));
  show("exists", () => v.writeFile("a/b.txt", "again"));
  v.writeFile("a/b.txt", "hello, again", { overwrite: true });
  console.log(JSON.stringify(v.listdir("a").map((e) => [e.path, e.type, e.size])));
  console.log(v.readText("a/b.txt"), JSON.stringify([...v.readRange("a/b.txt", 7, 5)]));
  v.copy("a/b.txt", "copy.txt");
  v.remove("copy.txt");
  show("non-empty", () => v.remove("a"));
  show("gone", () => v.readFile("copy.txt"));
  console.log(JSON.stringify(v.commit()), typeof v.version);
}

export function calls() {
  console.log(remote("square", [7]), remote("square", { x: 8 }));
  const c = spawn("square", [9]);
  console.log(c.get(), c.get());
  console.log(JSON.stringify(map("square", [1, 2, 3])));
  // What a callee throws is thrown here: JavaScript's own classes as
  // themselves, the app's as RemoteError.
  try {
    remote("fail");
  } catch (e) {
    console.log(e instanceof RangeError, e.name, e.message, e.cause instanceof RemoteError,
      e.remote.type, e.remote.traceback.split("\n")[0], e.remote.traceback.includes("fail@"));
  }
  try {
    remote("fail-custom");
  } catch (e) {
    console.log(e instanceof RemoteError, e instanceof CallFailed, e.type, e.remoteMessage, e.detail);
  }
  show("unknown", () => remote("nope"));
  show("bad args", () => remote("square", 3));
}

export function errors() {
  try {
    Dict.fromName("secret");
  } catch (e) {
    console.log(e instanceof AccessDenied, e instanceof VesselError, e.name, e.message);
  }
  try {
    Dict.fromName("kv-missing");
  } catch (e) {
    console.log(e instanceof NotFound, e.detail);
  }
  show("bad name", () => Dict.fromName("bad/name", { createIfMissing: true }));
  show("ungranted volume", () => Volume.fromName("ghost"));
  show("not mounted", () => Volume.mounted("/elsewhere"));
  console.log(new Busy(["a", "b"]).message);
}

export function square(x) {
  return x * x;
}

export function fail() {
  throw new RangeError("boom");
}

class Overdrawn extends Error {}

export function failCustom() {
  throw new Overdrawn("balance below zero");
}

export function lookup(key) {
  const value = Dict.fromName("kv").get(key);
  if (value === undefined) throw new NotFound(`no key ${key}`);
  return value;
}

export function versionsApi() {
  const v = Volume.fromName("versioned", { createIfMissing: true });
  v.writeFile("a.txt", "one");
  v.writeFile("a.txt", "two", { overwrite: true });
  v.writeFile("b.txt", "bee");
  const h = v.history({ limit: 2 });
  console.log(h.head, h.oldest, JSON.stringify(h.versions.map((x) => [x.version, x.changed])));
  const old = Volume.fromName("versioned", { version: 1 });
  console.log(old.version, old.readText("a.txt"));
  show("write at a version", () => old.writeFile("c.txt", "x"));
  console.log(JSON.stringify(v.diff(1)));
  console.log(JSON.stringify(v.diff(1, 2).map((d) => [d.path, d.change])), JSON.stringify(v.diff(3, 3)));
  const f = old.fork("versioned-fork");
  console.log(f.name, f.version, JSON.stringify(f.listdir("/").map((e) => e.path)));
  // Writes to the fork leave the source alone, and the other way round.
  f.writeFile("a.txt", "forked", { overwrite: true });
  v.writeFile("c.txt", "sea");
  console.log(f.version, f.readText("a.txt"), JSON.stringify(f.listdir("/").map((e) => e.path)));
  console.log(v.version, v.readText("a.txt"), old.readText("a.txt"));
  show("missing version", () => Volume.fromName("versioned", { version: 99 }));
  show("version and create", () => Volume.fromName("versioned", { version: 1, createIfMissing: true }));
}

export function conflictApi() {
  const vol = Volume.mounted("/data");
  vol.writeFile("f.txt", "mine");
  // Another container commits the same file meanwhile.
  remote("other-writer");
  try {
    vol.commit({ conflicts: "fail" });
  } catch (e) {
    if (!(e instanceof Conflict)) throw e;
    console.log("conflict", JSON.stringify(e.paths), e.head, e instanceof PreconditionFailed);
    const theirs = Volume.fromName("contested", { version: e.head }).readText("f.txt");
    vol.writeFile("f.txt", `mine+${theirs}`, { overwrite: true });
  }
  console.log(JSON.stringify(vol.commit({ conflicts: "fail" })));
  console.log(vol.readText("f.txt"));
  show("bad policy", () => vol.commit({ conflicts: "maybe" }));
  // Again, now through the mount's own policy: a plain commit refuses,
  // last-writer-wins overwrites theirs.
  vol.writeFile("f.txt", "mine again", { overwrite: true });
  remote("other-writer");
  show("plain commit", () => vol.commit());
  console.log(JSON.stringify(vol.commit({ conflicts: "last-writer-wins" })));
}

export function otherWriter() {
  const vol = Volume.mounted("/data");
  vol.reload();
  vol.writeFile("f.txt", "theirs", { overwrite: true });
  vol.commit();
}
