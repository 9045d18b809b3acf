// A guestbook on vessel: a dict counts visits, a volume keeps the log.
import { Dict, Volume, remote } from "./vessel.js";

const LOG = "guestbook.txt"; // on the volume mounted at /data

function readLog(vol) {
  try {
    return vol.readText(LOG);
  } catch (e) {
    if (e.name === "NotFound") return "";
    throw e;
  }
}

export function sign(name) {
  const visits = Dict.fromName("visits", { createIfMissing: true });
  const n = visits.get(name, 0) + 1;
  visits.set(name, n);
  const vol = Volume.mounted("/data");
  vol.writeFile(LOG, readLog(vol) + `${name} (visit ${n})\n`, { overwrite: true });
  const info = vol.commit();
  console.log(`${name} signed; the log is at version ${info.version}`);
  return BigInt(n);
}

export function show(reload) {
  const vol = Volume.mounted("/data");
  if (reload) vol.reload();
  const text = readLog(vol);
  console.log(text === "" ? "(no entries)" : text.trimEnd());
}

export function visits(name) {
  const n = Dict.fromName("visits").get(name);
  if (n === undefined) throw new Error(`${name} never signed`);
  return BigInt(n);
}

export function main() {
  remote("show", [false]); // 1. the reader's container starts
  remote("sign", ["ada"]); // 2. another container commits a line
  remote("show", [false]); // 3. warm reader: still its old snapshot
  remote("show", [true]); // 4. it reloads and sees the line
}

export function versions() {
  const log = Volume.mounted("/data");
  for (const v of log.history({ limit: 10 }).versions) {
    console.log(`version ${v.version}: ${v.changed} changed, ${v.bytesAdded} bytes added`);
  }
  const first = Volume.fromName(log.name, { version: 1 });
  console.log(`at version 1: ${first.readText(LOG).trimEnd()}`);
  for (const d of log.diff(1)) {
    console.log(`since then: ${d.path} ${d.change}, ${d.sizeBefore} -> ${d.sizeAfter} bytes`);
  }
  // A fork starts as this version without copying it; writing to it
  // leaves the guestbook alone.
  const draft = log.fork("guestbook-draft");
  const lines = readLog(log).trimEnd().split("\n");
  draft.writeFile(LOG, lines.reverse().join("\n") + "\n", { overwrite: true });
  console.log(`${draft.name} is at version ${draft.version}`);
}
