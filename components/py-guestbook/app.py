"""A guestbook on vessel: a dict counts visits, a volume keeps the log."""

import wit_world

import vessel

LOG = "/data/guestbook.txt"


class WitWorld(wit_world.WitWorld):
    def sign(self, name: str) -> int:
        visits = vessel.Dict.from_name("visits", create_if_missing=True)
        n = visits.get(name, 0) + 1
        visits[name] = n
        with open(LOG, "a") as f:
            f.write(f"{name} (visit {n})\n")
        info = vessel.Volume.mounted("/data").commit()
        print(f"{name} signed; the log is at version {info.version}")
        return n

    def show(self, reload: bool) -> None:
        if reload:
            vessel.Volume.mounted("/data").reload()
        try:
            with open(LOG) as f:
                print(f.read(), end="")
        except FileNotFoundError:
            print("(no entries)")

    def visits(self, name: str) -> int:
        # A name that never signed is a KeyError, as in a Python dict.
        return vessel.Dict.from_name("visits")[name]

    def main(self) -> None:
        vessel.remote("show", False)  # 1. the reader's container starts
        vessel.remote("sign", "ada")  # 2. another container commits a line
        vessel.remote("show", False)  # 3. warm reader: still its old snapshot
        vessel.remote("show", True)  # 4. it reloads and sees the line

    def versions(self) -> None:
        log = vessel.Volume.mounted("/data")
        for v in log.history(limit=10).versions:
            print(f"version {v.version}: {v.changed} changed, {v.bytes_added} bytes added")
        first = vessel.Volume.from_name(log.name, version=1)
        print("at version 1:", first.read_file("guestbook.txt").decode(), end="")
        for d in log.diff(1):
            print(f"since then: {d.path} {d.change.value}, {d.size_before} -> {d.size_after} bytes")
        # A fork starts as this version without copying it; writing to it
        # leaves the guestbook alone.
        draft = log.fork("guestbook-draft")
        with open(LOG) as f:
            newest_first = "".join(reversed(f.readlines()))
        draft.write_file("guestbook.txt", newest_first, overwrite=True)
        print(f"{draft.name} is at version {draft.version}")
