"""The guest side of the same-module-both-sides test: `shared.exercise`
runs here with the guest SDK; tests/it/python_client.rs runs it on the host
with vessel-client and compares the two outputs."""

import shared
import wit_world


class WitWorld(wit_world.WitWorld):
    def run(self, tag: str) -> str:
        return shared.exercise(tag)

    def square(self, x: int) -> int:
        return x * x

    def fail(self, message: str) -> None:
        raise ValueError(message)
