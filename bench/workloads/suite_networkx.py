"""Real code: networkx's own shortest-path tests (a graph library: views
over nested dicts, generators, heaps), from Debian's python3-networkx.
See _suite.py."""
import _suite

UNITS = 1  # whole runs of the suite at full size

_suite.prepare("networkx")


def run(units=UNITS):
    return _suite.run_tests(["networkx/algorithms/shortest_paths"], units)


if __name__ == "__main__":
    print(run())
