"""Real code: Beautiful Soup's own test suite (a parser: tree building,
navigation, output), from Debian's python3-bs4.  See _suite.py."""
import _suite

UNITS = 1  # whole runs of the suite at full size

_suite.prepare("bs4")


def run(units=UNITS):
    return _suite.run_tests(["bs4/tests"], units)


if __name__ == "__main__":
    print(run())
