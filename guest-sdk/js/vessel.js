// vessel: volumes, dicts and calls to other functions from a JavaScript
// guest built with componentize-js (`vessel build`).
//
//   import { Dict, Volume, remote } from "./vessel.js";
//
//   const kv = Dict.fromName("kv", { createIfMissing: true });
//   kv.set("cloud", "dictionary");        // stored as JSON
//   kv.get("cloud");                      // "dictionary"; undefined when missing
//
//   const vol = Volume.mounted("/data");
//   vol.writeFile("hello.txt", "hello", { overwrite: true });
//   vol.commit();                         // { version, changed, removed }
//
// The build puts this file beside the app as `vessel.js`; the app's
// world includes `vessel:storage/imports@0.1.0`. Errors are `VesselError`
// subclasses (`NotFound`, `AccessDenied`, ...). Versions and counters are
// numbers (exact up to 2^53; larger ones come back as BigInt).

import * as witDict from "vessel:storage/dict@0.1.0";
import * as witVolume from "vessel:storage/volume@0.1.0";
import * as witFunctions from "vessel:storage/functions@0.1.0";

// -- errors ----------------------------------------------------------------

/** Anything that went wrong in a vessel call; `detail` is the host's text. */
export class VesselError extends Error {
  constructor(detail = "", label = "vessel error") {
    super(detail ? `${label}: ${detail}` : label);
    this.name = new.target.name;
    this.detail = detail;
  }
}

/** The volume, dict, path, key or function does not exist. */
export class NotFound extends VesselError {
  constructor(detail) {
    super(detail, "not found");
  }
}
/** Not granted by the function's manifest, or the mount is read-only. */
export class AccessDenied extends VesselError {
  constructor(detail) {
    super(detail, "access denied");
  }
}
/** The thing to create exists already (and overwriting was not asked). */
export class AlreadyExists extends VesselError {
  constructor(detail) {
    super(detail, "already exists");
  }
}
/** A malformed argument: a bad name, path, key, range or JSON text. */
export class InvalidArgument extends VesselError {
  constructor(detail) {
    super(detail, "invalid argument");
  }
}
/** A value, batch or request is over a documented limit. */
export class TooLarge extends VesselError {
  constructor(detail) {
    super(detail, "too large");
  }
}
/** `reload()` found open files under the mount; `paths` lists them. */
export class Busy extends VesselError {
  constructor(paths) {
    super(`open files: ${paths.join(", ")}`, "volume busy");
    this.paths = paths;
  }
}
/** A quota is exhausted: the volume's inode limit or the disk. */
export class NoSpace extends VesselError {
  constructor(detail) {
    super(detail, "no space");
  }
}
/** A conditional write lost (version mismatch, or the lease is gone). */
export class PreconditionFailed extends VesselError {
  constructor() {
    super("", "precondition failed");
  }
}
/**
 * `commit({ conflicts: "fail" })` found that other commits changed `paths`
 * since this container read them: nothing was committed and the changes
 * stay. Read the paths at `head` (`Volume.fromName(name, { version: head
 * })`), merge, and commit again: it lands unless yet another commit
 * changed them.
 */
export class Conflict extends PreconditionFailed {
  constructor(paths, head) {
    super();
    this.detail = `other commits (up to version ${head}) changed ${paths.join(", ")}`;
    this.message = `conflict: ${this.detail}`;
    this.paths = paths;
    this.head = head;
  }
}
/** The store or the callee cannot serve now; a retry may succeed. */
export class Unavailable extends VesselError {
  constructor(detail) {
    super(detail, "unavailable");
  }
}
/** An I/O error in the host's storage. */
export class IoError extends VesselError {
  constructor(detail) {
    super(detail, "i/o error");
  }
}
/** A called function trapped, timed out or returned an error. */
export class CallFailed extends VesselError {
  constructor(detail) {
    super(detail, "call failed");
  }
}
/**
 * A called function threw an error this side does not rebuild (not one of
 * JavaScript's own classes): `type` is its class name, `remoteMessage` its
 * message and `traceback` the callee's stack. One of JavaScript's own
 * (`RangeError`, `TypeError`, ...) is thrown as itself instead, with this
 * error as its `cause` and `remote`.
 */
export class RemoteError extends CallFailed {
  constructor(detail, type, remoteMessage, traceback) {
    super(detail);
    this.type = type;
    this.remoteMessage = remoteMessage;
    this.traceback = traceback;
  }
}
/** A value could not be encoded to JSON or decoded from it. */
export class CodecError extends VesselError {
  constructor(detail) {
    super(detail, "cannot encode or decode the value");
  }
}

const BY_TAG = {
  "not-found": NotFound,
  "access-denied": AccessDenied,
  "already-exists": AlreadyExists,
  "invalid-argument": InvalidArgument,
  "too-large": TooLarge,
  "no-space": NoSpace,
  unavailable: Unavailable,
  io: IoError,
  "call-failed": CallFailed,
};

/** The exception for one value of the WIT `error` variant. */
export function fromWit(payload) {
  if (payload.tag === "busy") return new Busy([...payload.val]);
  if (payload.tag === "precondition-failed") return new PreconditionFailed();
  const Cls = BY_TAG[payload.tag];
  return Cls
    ? new Cls(String(payload.val))
    : new VesselError(`unknown error case ${JSON.stringify(payload)}`);
}

// Runs a generated binding, turning the `ComponentError` it throws for a WIT
// `err` into a vessel exception.
function wit(fn) {
  try {
    return fn();
  } catch (e) {
    const p = e !== null && typeof e === "object" ? e.payload : undefined;
    if (p !== null && typeof p === "object" && typeof p.tag === "string") {
      throw fromWit(p);
    }
    throw e;
  }
}

// u64/s64 values arrive as BigInt; a Number is easier while it is exact.
function num(v) {
  return typeof v === "bigint" && v <= BigInt(Number.MAX_SAFE_INTEGER) &&
      v >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(v)
    : v;
}

function big(v, what) {
  if (typeof v === "bigint") return v;
  if (Number.isSafeInteger(v)) return BigInt(v);
  throw new TypeError(`${what} must be an integer, not ${v}`);
}

// -- dicts -----------------------------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function encodeJson(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new CodecError(`cannot store the value as JSON: ${e.message}`);
  }
  if (text === undefined) {
    throw new CodecError(`cannot store ${typeof value} as JSON`);
  }
  return encoder.encode(text);
}

function decodeJson(bytes, key) {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch (e) {
    throw new CodecError(
      `the value at ${JSON.stringify(key)} is not JSON (${e.message}); read it with { raw: true }`,
    );
  }
}

function encodeRaw(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError("a raw dict stores Uint8Array values");
}

function checkKey(key) {
  if (typeof key !== "string") {
    throw new TypeError(`dict keys are strings, not ${typeof key}`);
  }
  return key;
}

// Keys per scan page when iterating; the host clamps it to its own limit.
const PAGE = 1000;

/** A lock on one key (see `Dict.lock`). */
export class Lease {
  constructor(handle) {
    this._handle = handle;
  }
  get key() {
    return this._handle.key();
  }
  /** The fencing token: larger for every later lease on the key. */
  get token() {
    return num(this._handle.token());
  }
  /** Extends the lease to `ttlMs` from now. */
  renew(ttlMs) {
    wit(() => this._handle.renew(big(ttlMs, "ttlMs")));
  }
  /** Gives the lock up. */
  release() {
    wit(() => this._handle.release());
  }
}

/**
 * A handle to one dict: string keys, JSON values (or bytes with `raw`).
 * Every write is durable when the call returns.
 */
export class Dict {
  constructor(handle, raw = false) {
    this._handle = handle;
    this._raw = raw;
  }

  /**
   * Opens the dict called `name`. Throws `NotFound` when it does not exist
   * (unless `createIfMissing`) and `AccessDenied` when not granted.
   */
  static fromName(name, { createIfMissing = false, raw = false } = {}) {
    return new Dict(wit(() => witDict.Dict.open(name, createIfMissing)), raw);
  }

  get name() {
    return this._handle.name();
  }

  /** This dict with values as Uint8Array, stored as they are. */
  get raw() {
    return new Dict(this._handle, true);
  }

  _encode(value) {
    return this._raw ? encodeRaw(value) : encodeJson(value);
  }

  _decode(bytes, key) {
    return this._raw ? bytes : decodeJson(bytes, key);
  }

  /** The value at `key`, or `defaultValue` when it is missing. */
  get(key, defaultValue = undefined) {
    const e = wit(() => this._handle.get(checkKey(key)));
    return e === undefined ? defaultValue : this._decode(e.value, key);
  }

  /** The value at `key` with its version, or undefined. */
  getVersioned(key) {
    const e = wit(() => this._handle.get(checkKey(key)));
    return e === undefined
      ? undefined
      : { value: this._decode(e.value, key), version: num(e.version) };
  }

  /**
   * Stores `value` at `key`; returns whether it wrote. `skipIfExists`
   * writes only when the key is absent; `ifVersion` only when the key's
   * version is that one (else `PreconditionFailed`); `ttl` expires the
   * entry that many seconds after the write.
   */
  put(key, value, { skipIfExists = false, ifVersion, ttl } = {}) {
    const options = {
      ifAbsent: skipIfExists,
      ifVersion: ifVersion === undefined ? undefined : big(ifVersion, "ifVersion"),
      ttlSeconds: ttl === undefined ? undefined : big(ttl, "ttl"),
    };
    const bytes = this._encode(value);
    const written = wit(() => this._handle.put(checkKey(key), bytes, options));
    return written !== undefined;
  }

  /** Stores `value` at `key` and returns this dict (as `Map.set`). */
  set(key, value) {
    this.put(key, value);
    return this;
  }

  has(key) {
    return wit(() => this._handle.contains(checkKey(key)));
  }

  /** Removes `key`; returns its value, or `defaultValue` when missing. */
  pop(key, defaultValue = undefined) {
    const e = wit(() => this._handle.pop(checkKey(key)));
    return e === undefined ? defaultValue : this._decode(e.value, key);
  }

  /** Removes `key`; returns whether it was there (as `Map.delete`). */
  delete(key) {
    return wit(() => this._handle.pop(checkKey(key))) !== undefined;
  }

  /** The exact number of entries. */
  len() {
    return num(wit(() => this._handle.len()));
  }

  get size() {
    return this.len();
  }

  /** Writes every pair of an object, Map or [key, value] list atomically. */
  update(pairs) {
    const source = pairs instanceof Map || Array.isArray(pairs)
      ? pairs
      : Object.entries(pairs);
    const entries = [];
    for (const [k, v] of source) entries.push([checkKey(k), this._encode(v)]);
    wit(() => this._handle.update(entries));
  }

  /** Removes every entry. */
  clear() {
    wit(() => this._handle.clear());
  }

  /** Adds `delta` to the counter at `key` and returns the new value. */
  increment(key, delta = 1) {
    return num(wit(() => this._handle.increment(checkKey(key), big(delta, "delta"))));
  }

  /** Takes the lock on `key` for `ttlMs`, or returns undefined if held. */
  lock(key, ttlMs = 30000) {
    const h = wit(() => this._handle.lock(checkKey(key), big(ttlMs, "ttlMs")));
    return h === undefined ? undefined : new Lease(h);
  }

  *_scan(prefix, withValues) {
    let cursor;
    for (;;) {
      const page = wit(() => this._handle.scan(prefix, cursor, PAGE, withValues));
      yield* page.items;
      if (page.cursor === undefined) return;
      cursor = page.cursor;
    }
  }

  /** Keys (starting with `prefix`) in key order, a page at a time. */
  *keys(prefix = "") {
    for (const item of this._scan(prefix, false)) yield item.key;
  }

  *values(prefix = "") {
    for (const item of this._scan(prefix, true)) yield this._decode(item.value, item.key);
  }

  /** [key, value] pairs in key order, a page at a time. */
  *items(prefix = "") {
    for (const item of this._scan(prefix, true)) {
      yield [item.key, this._decode(item.value, item.key)];
    }
  }

  entries(prefix = "") {
    return this.items(prefix);
  }

  [Symbol.iterator]() {
    return this.items();
  }
}

// -- volumes ---------------------------------------------------------------

// Bytes per read-file call when reading a whole file.
const CHUNK = 8 << 20;

/**
 * A handle to one volume as this container sees it. JavaScript guests have
 * no file API, so they use the object methods (`readFile`, `writeFile`,
 * ...), which work on this container's view; `commit` publishes it.
 */
export class Volume {
  constructor(handle) {
    this._handle = handle;
  }

  /**
   * The volume called `name`; `NotFound` / `AccessDenied` otherwise. With
   * `version`, a read-only handle on that kept version (its writes throw
   * `AccessDenied`; `NotFound` names the head or the oldest version kept).
   */
  static fromName(name, { createIfMissing = false, version } = {}) {
    if (version !== undefined) {
      if (createIfMissing) {
        throw new InvalidArgument("a handle on a version cannot create the volume");
      }
      return new Volume(wit(() => witVolume.Volume.atVersion(name, big(version, "version"))));
    }
    return new Volume(wit(() => witVolume.Volume.fromName(name, createIfMissing)));
  }

  /** The volume mounted at `path` (for example "/data"). */
  static mounted(path) {
    return new Volume(wit(() => witVolume.Volume.mounted(path)));
  }

  get name() {
    return this._handle.name();
  }

  /** The committed version this container's view is based on. */
  get version() {
    return num(this._handle.version());
  }

  /**
   * Publishes this container's changes: `{ version, changed, removed }`.
   * `conflicts` overrides the mount's policy for this call:
   * "last-writer-wins", or "fail": a commit that would overwrite paths other
   * commits changed since this container read them commits nothing and
   * throws `Conflict` (with `paths` and `head`).
   */
  commit({ conflicts } = {}) {
    let c;
    if (conflicts === undefined) {
      c = wit(() => this._handle.commit());
    } else {
      if (conflicts !== "fail" && conflicts !== "last-writer-wins") {
        throw new InvalidArgument(
          `conflicts=${JSON.stringify(conflicts)}: "last-writer-wins" or "fail"`,
        );
      }
      const outcome = wit(() => this._handle.commitWith(conflicts));
      if (outcome.tag === "conflict") {
        throw new Conflict([...outcome.val.paths], num(outcome.val.head));
      }
      c = outcome.val;
    }
    return { version: num(c.version), changed: num(c.changed), removed: num(c.removed) };
  }

  /**
   * The volume's kept versions: `{ head, oldest, retentionMs, versions }`,
   * versions newest first as `{ version, timeMs, changed, removed,
   * bytesAdded }`.
   */
  history({ limit = 100 } = {}) {
    const h = wit(() => this._handle.history(limit));
    return {
      head: num(h.head),
      oldest: num(h.oldest),
      retentionMs: num(h.retentionMs),
      versions: h.versions.map((v) => ({
        version: num(v.version),
        timeMs: num(v.timeMs),
        changed: num(v.changed),
        removed: num(v.removed),
        bytesAdded: num(v.bytesAdded),
      })),
    };
  }

  /**
   * The paths added, modified and removed from version `since` to `until`
   * (default: this handle's version): `{ path, change, type, sizeBefore,
   * sizeAfter }` in path order (a size is `undefined` where the path does
   * not exist).
   */
  diff(since, until = undefined) {
    const u = until === undefined ? undefined : big(until, "until");
    return wit(() => this._handle.diff(big(since, "since"), u)).map((d) => ({
      path: d.path,
      change: d.change,
      type: d.kind,
      sizeBefore: d.sizeBefore === undefined ? undefined : num(d.sizeBefore),
      sizeAfter: d.sizeAfter === undefined ? undefined : num(d.sizeAfter),
    }));
  }

  /**
   * A new volume called `name` whose first version is this handle's
   * committed version, copying nothing. The function must be granted it.
   */
  fork(name) {
    return new Volume(wit(() => this._handle.fork(name)));
  }

  /** Commits, then moves to the latest version and returns it. */
  reload() {
    return num(wit(() => this._handle.reload()));
  }

  /** Entries `{ path, type, size, mtime }` of directory `path`. */
  listdir(path = "/", { recursive = false } = {}) {
    return wit(() => this._handle.listdir(path, recursive)).map((e) => ({
      path: e.path,
      type: e.kind,
      size: num(e.size),
      mtime: num(e.mtime),
    }));
  }

  /** Up to `length` bytes of a file from `offset`. */
  readRange(path, offset, length) {
    return wit(() => this._handle.readFile(path, big(offset, "offset"), big(length, "length")));
  }

  /** A whole file as a Uint8Array; `NotFound` when it does not exist. */
  readFile(path) {
    const chunks = [];
    let total = 0;
    for (;;) {
      const chunk = this.readRange(path, total, CHUNK);
      chunks.push(chunk);
      total += chunk.length;
      if (chunk.length < CHUNK) break;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  /** A whole UTF-8 file as a string. */
  readText(path) {
    return decoder.decode(this.readFile(path));
  }

  /** Writes a whole file (a string as UTF-8), creating parent directories. */
  writeFile(path, data, { overwrite = false } = {}) {
    const bytes = typeof data === "string" ? encoder.encode(data) : encodeRaw(data);
    wit(() => this._handle.writeFile(path, bytes, overwrite));
  }

  /** Removes a file, or a directory (empty unless `recursive`). */
  remove(path, { recursive = false } = {}) {
    wit(() => this._handle.remove(path, recursive));
  }

  /** Copies one file to `dst`, or several into directory `dst`. */
  copy(srcs, dst) {
    wit(() => this._handle.copy(typeof srcs === "string" ? [srcs] : [...srcs], dst));
  }
}

// -- calls to other functions -----------------------------------------------

function argsJson(fn, args) {
  if (args === null || typeof args !== "object") {
    throw new TypeError(
      `calling ${fn}: pass the arguments as an array (by position) or an object (by name)`,
    );
  }
  try {
    return JSON.stringify(args);
  } catch (e) {
    throw new CodecError(`the arguments of ${fn} are not JSON: ${e.message}`);
  }
}

function decodeResult(fn, text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CodecError(`the result of ${fn} is not JSON: ${e.message}`);
  }
}

/**
 * Runs `fn` of this app in its own container and returns its result.
 * `args` is an array of positional arguments or an object by WIT parameter
 * name.
 */
export function remote(fn, args = []) {
  return decodeResult(fn, call(() => witFunctions.remote(fn, argsJson(fn, args))));
}

/** Starts `fn` in the background; `.get()` on the result waits for it. */
export function spawn(fn, args = []) {
  const handle = wit(() => witFunctions.spawn(fn, argsJson(fn, args)));
  return {
    get: () => decodeResult(fn, call(() => handle.get())),
  };
}

// JavaScript's own error classes: a callee's is rebuilt as itself.
const BUILTIN_ERRORS = {
  Error, RangeError, TypeError, SyntaxError, ReferenceError, EvalError, URIError,
};

/**
 * `wit(fn)` for a call binding: an error the callee threw and reported
 * (`lastFailure`) is thrown here, as its own class when it is one of
 * JavaScript's, else as a `RemoteError`.
 */
function call(fn) {
  try {
    return wit(fn);
  } catch (e) {
    if (!(e instanceof CallFailed)) throw e;
    const f = witFunctions.lastFailure();
    if (f === undefined || f === null) throw e;
    const remote = new RemoteError(e.detail, f.typeName, f.message, f.traceback);
    const Cls = Object.hasOwn(BUILTIN_ERRORS, f.typeName) ? BUILTIN_ERRORS[f.typeName] : undefined;
    if (Cls === undefined) throw remote;
    const rebuilt = new Cls(f.message, { cause: remote });
    rebuilt.remote = remote;
    throw rebuilt;
  }
}

/**
 * Ends the current call with `e`, an error an export did not catch, so
 * its caller gets its class, message and stack (`functions.fail`). The
 * build wraps every exported function with it; apps do not call it.
 */
export function __vesselFail(e) {
  const isError = e instanceof Error;
  const typeName = isError ? (e.constructor?.name || e.name || "Error") : typeof e;
  const message = isError ? String(e.message) : String(e);
  // The SDK's own frames say nothing about the app.
  const stack = isError && typeof e.stack === "string"
    ? e.stack.split("\n").filter((l) => l !== "" && !/vessel\.js:\d/.test(l) &&
        !/__vessel_entry\.js:\d/.test(l))
    : [];
  const traceback = [`${typeName}: ${message}`, ...stack.map((l) => `    at ${l}`)].join("\n");
  witFunctions.fail({ typeName, message, traceback });
  throw e; // not reached: `fail` ends the call
}

/** Calls `fn` once per input (its single argument), all at once. */
export function map(fn, inputs) {
  const calls = [...inputs].map((x) => spawn(fn, [x]));
  return calls.map((c) => c.get());
}
