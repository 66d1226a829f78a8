"""Real code: toolz's own test suite (functional utilities: curried
functions, iterators, dict helpers), from Debian's python3-toolz.  See
_suite.py."""
import _suite

UNITS = 1  # whole runs of the suite at full size

_suite.prepare("toolz")


def run(units=UNITS):
    return _suite.run_tests(["toolz/tests"], units)


if __name__ == "__main__":
    print(run())
