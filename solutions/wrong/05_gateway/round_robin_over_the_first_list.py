"""Round robin that cycles over the first list it was given: an instance that left keeps getting
requests, one that joined never does — the right idea applied once instead of at each call."""
# REFUSED BY: round robin follows the list it is given now (an instance left, another joined)
# REPLACES: RoundRobin
class RoundRobin:
    def __init__(self):
        self.cycle = None

    def pick(self, instances: list[dict]) -> dict:
        import itertools

        if self.cycle is None:
            self.cycle = itertools.cycle(instances)
        return next(self.cycle)
