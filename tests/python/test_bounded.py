"""Bounded values (issue 15): what a line costs does not grow with the size
of the values in scope.  Containers are composed item by item only up to
repr_limit (the cut noted with the item count), unchanged containers are
recognised by the items that were shown, arrays by their bytes, and the
text stays exactly str()'s (cut).  Boundedness is tested by counting the
program's own __repr__ calls, never by timing.
"""
import json
import textwrap
import unittest

from helpers import TempDirTest, parse_log
import helpers
from test_values import changed_values, log_text

# Each shape's str() is compared with the log at several limits, so that
# cuts fall inside strings (with quotes of both kinds), bytes, nested
# containers, sets and recursion.
SHAPES = """\
    import json, sys
    from collections import OrderedDict, defaultdict
    from steptrace import Tracer, LogOutput, VariableMode

    def shapes():
        rec = [1, 2]
        rec.append(rec)
        drec = {"a": 1}
        drec["self"] = drec
        a = ["plain " * 30, "it's " * 30, 'say "hi" ' * 30,
             "both ' and \\" " * 30, b"bytes ' " * 30, b'q"' * 40]
        b = {"k%d" % i: [i, str(i) * i, (i,)] for i in range(40)}
        c = {1, 2, 3}
        d = frozenset({"x", "y"})
        e = [set(), frozenset(), [], (), {}]
        f = rec
        g = drec
        h = OrderedDict(a=1, b=[2, 3])
        i = defaultdict(list, {"z": [1]})
        j = [[[[[[[[["deep"]]]]]]]]]
        k = ("only",)
        l = ["\\u00e9\\u2028\\t" * 50, "\\x00" * 50]
        m = {(1, "t"): {2: None}, 3.5: [True, False, -0.0]}
        return a, b, c, d, e, f, g, h, i, j, k, l, m

    limit = int(sys.argv[1])
    with Tracer(log_output=LogOutput.FILE, log_dir="logs",
                variable_mode=VariableMode.ALL, repr_limit=limit):
        vals = shapes()
    print(json.dumps(dict(zip("abcdefghijklm",
                              [[str(v), len(v)] for v in vals]))))
    """

# A container that must never be rendered whole: its items count their
# repr() calls.
COUNTED = """\
    import sys
    from steptrace import Tracer, LogOutput, VariableMode

    class Item:
        calls = 0
        def __init__(self, k):
            self.k = k
        def __repr__(self):
            Item.calls += 1
            return "Item(%d)" % self.k

    def work(kind, n):
        if kind == "list":
            big = [Item(k) for k in range(200000)]
        else:
            big = {k: Item(k) for k in range(100000)}
        total = 0
        for i in range(n):
            total += i
        return total

    # Only work() is traced: Item.__init__'s own lines would show `self`
    # (one repr each) 200,000 times.
    mode = getattr(VariableMode, sys.argv[2])
    with Tracer(log_output=LogOutput.STDOUT, variable_mode=mode,
                repr_limit=100, traceable_functions=["work"]):
        work(sys.argv[1], 50)
    print("CALLS", Item.calls, file=sys.stderr)
    """

BIG = """\
    import sys
    from steptrace import Tracer, LogOutput, VariableMode

    def work():
        big = list(range(200000))
        text = "x" * 10_000_000
        table = {i: str(i) for i in range(100000)}
        grow = []
        for i in range(4):
            grow.append(i)
        big[0] = -1
        big[150000] = -2
        table[0] = "zero"
        table[99999] = "last"
        return len(big)

    mode = getattr(VariableMode, sys.argv[1])
    with Tracer(log_output=LogOutput.STDOUT, variable_mode=mode,
                repr_limit=100):
        work()
    """

ARRAY = """\
    import array, sys
    from steptrace import Tracer, LogOutput, VariableMode

    class Arr(array.array):
        calls = 0
        def __repr__(self):
            Arr.calls += 1
            return "Arr(%d items, first %r)" % (len(self), self[0])

    def work():
        a = Arr("d", range(100000))
        for i in range(50):
            x = i
            if i in (10, 30):
                a[0] = -1.0 * i
        return x

    mode = getattr(VariableMode, sys.argv[1])
    with Tracer(log_output=LogOutput.STDOUT, variable_mode=mode):
        work()
    print("CALLS", Arr.calls, file=sys.stderr)
    """


def vars_of(rec):
    return rec.vars("Local")


class BoundedTest(TempDirTest):

    def test_composed_texts_are_str_cut(self):
        self.script("shapes.py", textwrap.dedent(SHAPES))
        for limit in (17, 100, 1000, 100000):
            with self.subTest(limit=limit):
                helpers.run(["rm", "-rf", "logs"], self.tmp)
                r = helpers.python(self.tmp, "shapes.py", str(limit))
                self.assertEqual(r.returncode, 0, r)
                want = json.loads(r.stdout.splitlines()[-1])
                recs = self.records(log_dir="logs")
                got = vars_of([x for x in recs if x.func == "shapes"][-1])
                for name, (text, items) in want.items():
                    kind = got[name][0]
                    n = items if kind in ("list", "tuple", "dict", "set",
                                          "frozenset") else None
                    self.assertEqual(got[name][1], log_text(text, limit, n),
                                     "variable %s (%s)" % (name, kind))

    def test_a_big_container_costs_what_is_shown(self):
        self.script("counted.py", textwrap.dedent(COUNTED))
        for kind in ("list", "dict"):
            for mode in ("ALL", "CHANGED"):
                with self.subTest(kind=kind, mode=mode):
                    r = helpers.python(self.tmp, "counted.py", kind, mode)
                    self.assertEqual(r.returncode, 0, r)
                    calls = int(r.stderr.split("CALLS")[1])
                    # Each line shows about 10 items (100 characters);
                    # rendering all of them would be 100,000+ calls.
                    self.assertLess(calls, 110 * 20, calls)
                    recs = parse_log(r.stdout)
                    shown = [v for x in recs for line in x.lines
                             if line.startswith(("big: ", "[NEW] big: "))
                             for v in [line]]
                    self.assertTrue(shown, r.stdout[-2000:])
                    self.assertTrue(shown[0].endswith(
                        "... (%d items)" % (200000 if kind == "list"
                                            else 100000)), shown[0])

    def test_big_values_changes_and_cuts(self):
        self.script("big.py", textwrap.dedent(BIG))
        r = helpers.python(self.tmp, "big.py", "CHANGED")
        self.assertEqual(r.returncode, 0, r)
        recs = parse_log(r.stdout)
        new = {}
        for rec in recs:
            for line in rec.lines:
                if line.startswith("[NEW] "):
                    name, rest = line[6:].split(": ", 1)
                    new[name] = rest.split(" :: ", 1)[1]
        self.assertEqual(new["big"], log_text(str(list(range(200000))),
                                              100, 200000))
        self.assertEqual(new["text"], "x" * 100 + "... (10000000 chars)")
        self.assertEqual(new["table"], log_text(
            str({i: str(i) for i in range(100000)}), 100, 100000))
        # A list appended to at every step: a change at every step.
        self.assertEqual(changed_values(r.stdout, "grow", "list"),
                         ["[0]", "[0, 1]", "[0, 1, 2]", "[0, 1, 2, 3]"])
        # Changes in what is shown are seen; beyond it (big[150000],
        # table[99999]: the lengths unchanged) they are not, by design
        # (README, "Values").
        big = changed_values(r.stdout, "big", "list")
        self.assertEqual(len(big), 1, big)
        self.assertTrue(big[0].startswith("[-1, 1, 2, 3"), big)
        table = changed_values(r.stdout, "table", "dict")
        self.assertEqual(len(table), 1, table)
        self.assertTrue(table[0].startswith("{0: 'zero', 1: '1'"), table)

    def test_an_array_is_rendered_once_per_change(self):
        self.script("arr.py", textwrap.dedent(ARRAY))
        for mode in ("ALL", "CHANGED"):
            with self.subTest(mode=mode):
                r = helpers.python(self.tmp, "arr.py", mode)
                self.assertEqual(r.returncode, 0, r)
                # The first sight and two changes.
                self.assertEqual(r.stderr.strip(), "CALLS 3", r.stderr)
                if mode == "CHANGED":
                    self.assertEqual(
                        changed_values(r.stdout, "a", "Arr"),
                        ["Arr(100000 items, first -10.0)",
                         "Arr(100000 items, first -30.0)"])


if __name__ == "__main__":
    unittest.main()
