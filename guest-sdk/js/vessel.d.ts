// Types for vessel.js, the SDK of JavaScript guests (`vessel sdk js DIR`
// writes both). An editor or `tsc --checkJs` reads them beside vessel.js.

/** A value a dict stores as JSON. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Anything that went wrong in a vessel call; `detail` is the host's text. */
export class VesselError extends Error {
  constructor(detail?: string, label?: string);
  readonly detail: string;
}
/** The volume, dict, path, key or function does not exist. */
export class NotFound extends VesselError {}
/** Not granted by the function's manifest, or the mount is read-only. */
export class AccessDenied extends VesselError {}
/** The thing to create exists already (and overwriting was not asked). */
export class AlreadyExists extends VesselError {}
/** A malformed argument: a bad name, path, key, range or JSON text. */
export class InvalidArgument extends VesselError {}
/** A value, batch or request is over a documented limit. */
export class TooLarge extends VesselError {}
/** `reload()` found open files under the mount. */
export class Busy extends VesselError {
  constructor(paths: string[]);
  readonly paths: string[];
}
/** A quota is exhausted: the volume's inode limit or the disk. */
export class NoSpace extends VesselError {}
/** A conditional write lost (version mismatch, or the lease is gone). */
export class PreconditionFailed extends VesselError {
  constructor();
}
/** `commit({ conflicts: "fail" })` found other commits on the same paths. */
export class Conflict extends PreconditionFailed {
  constructor(paths: string[], head: number);
  readonly paths: string[];
  readonly head: number;
}
/** The store or the callee cannot serve now; a retry may succeed. */
export class Unavailable extends VesselError {}
/** An I/O error in the host's storage. */
export class IoError extends VesselError {}
/** A called function trapped, timed out or returned an error. */
export class CallFailed extends VesselError {}
/** A called function threw an error that is not one of JavaScript's own. */
export class RemoteError extends CallFailed {
  constructor(detail: string, type: string, remoteMessage: string, traceback: string);
  /** The error's class name in the callee. */
  readonly type: string;
  /** Its message in the callee. */
  readonly remoteMessage: string;
  /** The callee's stack. */
  readonly traceback: string;
}
/** A value could not be encoded to JSON or decoded from it. */
export class CodecError extends VesselError {}

/** The exception for one value of the WIT `error` variant. */
export function fromWit(payload: { tag: string; val?: unknown }): VesselError;

/** A lock on one key of a dict (`Dict.lock`). */
export class Lease {
  readonly key: string;
  /** The fencing token: larger for every later lease on the key. */
  readonly token: number;
  /** Extends the lease to `ttlMs` from now. */
  renew(ttlMs: number): void;
  /** Gives the lock up. */
  release(): void;
}

/** A persistent map: JSON values (or bytes, with `raw`). */
export class Dict {
  /** Opens the dict called `name`. */
  static fromName(name: string, options?: { createIfMissing?: boolean; raw?: boolean }): Dict;
  readonly name: string;
  /** This dict with values as Uint8Array, stored as they are. */
  readonly raw: Dict;
  /** The value at `key`, or undefined when it is missing. */
  get<T = Json>(key: string): T | undefined;
  /** The value at `key`, or `defaultValue` when it is missing. */
  get<T = Json>(key: string, defaultValue: T): T;
  /** The value at `key` with its version, or undefined. */
  getVersioned<T = Json>(key: string): { value: T; version: number } | undefined;
  /** Stores `value` at `key`; returns whether it wrote. */
  put(
    key: string,
    value: Json | Uint8Array,
    options?: { skipIfExists?: boolean; ifVersion?: number; ttl?: number },
  ): boolean;
  /** Stores `value` at `key` and returns this dict (as `Map.set`). */
  set(key: string, value: Json | Uint8Array): this;
  has(key: string): boolean;
  /** Removes `key`; returns its value, or undefined when missing. */
  pop<T = Json>(key: string): T | undefined;
  /** Removes `key`; returns its value, or `defaultValue` when missing. */
  pop<T = Json>(key: string, defaultValue: T): T;
  /** Removes `key`; returns whether it was there (as `Map.delete`). */
  delete(key: string): boolean;
  /** The exact number of entries. */
  len(): number;
  readonly size: number;
  /** Writes every pair of an object, Map or [key, value] list atomically. */
  update(
    pairs: Record<string, Json> | Map<string, Json> | Iterable<[string, Json | Uint8Array]>,
  ): void;
  /** Removes every entry. */
  clear(): void;
  /** Adds `delta` to the counter at `key` and returns the new value. */
  increment(key: string, delta?: number): number;
  /** Takes the lock on `key` for `ttlMs`, or returns undefined if held. */
  lock(key: string, ttlMs?: number): Lease | undefined;
  /** Keys (starting with `prefix`) in key order, a page at a time. */
  keys(prefix?: string): Generator<string>;
  values<T = Json>(prefix?: string): Generator<T>;
  /** [key, value] pairs in key order, a page at a time. */
  items<T = Json>(prefix?: string): Generator<[string, T]>;
  entries<T = Json>(prefix?: string): Generator<[string, T]>;
  /** [key, value] pairs, as `items()`. */
  [Symbol.iterator](): Generator<[string, Json]>;
}

/** What `Volume.listdir` lists. */
export interface FileEntry {
  path: string;
  type: "file" | "directory" | "symlink";
  size: number;
  mtime: number;
}

/** What a commit published. */
export interface CommitInfo {
  version: number;
  changed: number;
  removed: number;
}

/** A file tree that persists: mounted at a path, or opened by name. */
export class Volume {
  /** The volume called `name`; with `version`, a read-only kept version. */
  static fromName(name: string, options?: { createIfMissing?: boolean; version?: number }): Volume;
  /** The volume mounted at `path` (for example "/data"). */
  static mounted(path: string): Volume;
  readonly name: string;
  /** The committed version this container's view is based on. */
  readonly version: number;
  /** Publishes this container's changes. */
  commit(options?: { conflicts?: "last-writer-wins" | "fail" }): CommitInfo;
  /** The volume's kept versions, newest first. */
  history(options?: { limit?: number }): {
    head: number;
    oldest: number;
    retentionMs: number;
    versions: {
      version: number;
      timeMs: number;
      changed: number;
      removed: number;
      bytesAdded: number;
    }[];
  };
  /** The paths added, modified and removed from `since` to `until`. */
  diff(
    since: number,
    until?: number,
  ): {
    path: string;
    change: "added" | "modified" | "removed";
    type: "file" | "directory" | "symlink";
    sizeBefore: number | undefined;
    sizeAfter: number | undefined;
  }[];
  /** A new volume called `name` starting at this handle's version. */
  fork(name: string): Volume;
  /** Commits, then moves to the latest version and returns it. */
  reload(): number;
  /** Entries of directory `path`. */
  listdir(path?: string, options?: { recursive?: boolean }): FileEntry[];
  /** Up to `length` bytes of a file from `offset`. */
  readRange(path: string, offset: number, length: number): Uint8Array;
  /** A whole file. */
  readFile(path: string): Uint8Array;
  /** A whole UTF-8 file as a string. */
  readText(path: string): string;
  /** Writes a whole file (a string as UTF-8), creating parent directories. */
  writeFile(path: string, data: string | Uint8Array, options?: { overwrite?: boolean }): void;
  /** Removes a file, or a directory (empty unless `recursive`). */
  remove(path: string, options?: { recursive?: boolean }): void;
  /** Copies one file to `dst`, or several into directory `dst`. */
  copy(srcs: string | string[], dst: string): void;
}

/** A call started by `spawn`. */
export interface FunctionCall<T = Json> {
  /** Waits for the result; the same outcome every time. */
  get(): T;
}

/**
 * Runs `fn` of this app in its own container and returns its result. An
 * error the callee throws is thrown here (JavaScript's own classes as
 * themselves, others as `RemoteError`).
 */
export function remote<T = Json>(fn: string, args?: Json[] | Record<string, Json>): T;
/** Starts `fn` in the background. */
export function spawn<T = Json>(fn: string, args?: Json[] | Record<string, Json>): FunctionCall<T>;
/** Calls `fn` once per input (its single argument), all at once. */
export function map<T = Json>(fn: string, inputs: Iterable<Json>): T[];
/** Used by the build's export wrappers; apps do not call it. */
export function __vesselFail(e: unknown): never;
