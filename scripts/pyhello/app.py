# A minimal componentize-py guest (about 18 MB with the Python runtime),
# used to measure the compile cache.
import wit_world


class WitWorld(wit_world.WitWorld):
    def hello(self, name: str) -> str:
        return f"hello, {name} from python"
