"""Values in the log are str() of the value (docs/LOG-FORMAT.md section 6),
also where the agent avoids calling str(): containers of immutable values are
put together from their items' texts, ints and floats are formatted in C,
unchanged containers are recognised by their items.  Each test runs a real
script in a real interpreter and compares with what Python itself prints."""
import json
import re
import textwrap
import unittest

from helpers import TempDirTest, parse_log
import helpers

SHAPES = """\
    import json
    from steptrace import Tracer, LogOutput, VariableMode

    def shapes():
        a = [1, 2.5, "x'y\\"z", None, True, False, b"b\\x00'", 3+4j, 10**30,
             -7, (1,), (), [], {}, {"k": [1, (2, 3.25)]}, "\\u00e9\\u2028",
             0.1 + 0.2, 1e300 * 10, -0.0, float("nan"), 2**63, -2**63]
        b = (1,)
        c = {"n": 1.0, 2: "two", None: [0.1, 0.2], (1, "t"): {}}
        d = [[1, [2, [3, [4, [5]]]]]]
        e = ["s" * 50] * 30
        f = {"tab\\there": "new\\nline", "bell": "\\x07"}
        g = ["\\u00e9" * 20] * 60
        h = [1.5, [2.5, (3.5, {"x": 4.5})]]
        return a, b, c, d, e, f, g, h

    with Tracer(log_output=LogOutput.FILE, log_dir="logs",
                variable_mode=VariableMode.ALL, repr_limit=500):
        vals = shapes()
    print(json.dumps(dict(zip("abcdefgh", [[str(v), len(v)] for v in vals]))))
    """

CALLEE_REPLACES = """\
    from steptrace import Tracer, LogOutput, VariableMode

    def replace(d, k):
        d[0] = None
        d[0] = float(k)

    def main():
        data = [0.5]
        for k in range(8):
            replace(data, k)
        return data

    with Tracer(log_output=LogOutput.STDOUT,
                variable_mode=VariableMode.CHANGED,
                tracable_functions=["main"]):
        main()
    """

GLOBALS_IN_PLACE = """\
    import sys
    from steptrace import Tracer, LogOutput, VariableMode

    TOTALS = {"a": [0, 0.0], "b": [0, 0.0]}
    SEEN = []

    def bump(key, x):
        TOTALS[key][0] += 1
        TOTALS[key][1] += x

    def main():
        for k, x in (("a", 0.5), ("b", 1.25), ("a", 2.0)):
            bump(k, x)
            SEEN.append(str(TOTALS))
            print(SEEN[-1], file=sys.stderr)

    with Tracer(log_output=LogOutput.STDOUT,
                variable_mode=VariableMode.CHANGED,
                tracable_functions=["main"]):
        main()
    """

STR_CHANGES_CONTAINER = """\
    from steptrace import Tracer, LogOutput, VariableMode

    class Leaves:
        def __init__(self, box):
            self.box = box
        def __repr__(self):
            self.box.remove(self)   # the list changes while str() runs
            return "Leaves"

    def f():
        box = [1, 2]
        box.append(Leaves(box))
        a = 1
        b = 2
        print("FINAL", box)
        return box

    with Tracer(log_output=LogOutput.STDOUT, variable_mode=VariableMode.ALL):
        f()
    """


def changed_values(log, name, type_name):
    """The new values of every [CHANGED] line of `name` in a CHANGED-mode
    log, in order."""
    head = "[CHANGED] %s: %s :: " % (name, type_name)
    return [line.split(" -> ", 1)[1] for rec in parse_log(log)
            for line in rec.lines if line.startswith(head)]


def log_text(s, limit, items=None):
    """The log's form of str() text s: control characters escaped, cut at
    `limit` characters (docs/LOG-FORMAT.md section 6.2), the cut noted with the
    length of the text, or with the number of items of a container (`items`),
    which is what the agent knows without rendering it all."""
    def esc(t):
        out = []
        for ch in t:
            o = ord(ch)
            if o < 0x20 or o == 0x7f:
                out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(
                    ch, "\\x%02x" % o))
            else:
                out.append(ch)
        return "".join(out)
    if len(s) > limit:
        if items is not None:
            return esc(s[:limit]) + "... (%d items)" % items
        return esc(s[:limit]) + "... (%d chars)" % len(s)
    return esc(s)

# A class whose __str__ fills a cache from state its __init__ has not set
# yet (graph libraries do this with functools.cached_property): had the
# tracer called str() on the half-built object, the cache would hold the
# wrong size for the rest of the run.
HALF_BUILT = """\
    import functools, sys
    from steptrace import Tracer, LogOutput, VariableMode

    class Bag:
        def __init__(self, items):
            self.name = "bag"
            self._fill(items)
            self.ready = True

        def _fill(self, items):
            got = list(items)
            self.items = got

        @functools.cached_property
        def size(self):
            return len(getattr(self, "items", ()))

        def __str__(self):
            return "Bag %s of %d" % (self.name, self.size)

    class Cell(Bag):
        def __init__(self, items):
            self.get = lambda: self.items   # self is a cell here
            super().__init__(items)
            self.more = 1

    def main():
        b = Bag([1, 2, 3])
        c = Cell([4, 5])
        print(b, c, b.size, c.size, len(c.get()))

    mode = getattr(VariableMode, sys.argv[1])
    with Tracer(log_output=LogOutput.FILE, log_dir=sys.argv[1],
                variable_mode=mode):
        main()
    """


class ValuesTest(TempDirTest):

    def test_container_texts_are_str(self):
        self.script("shapes.py", textwrap.dedent(SHAPES))
        r = helpers.python(self.tmp, "shapes.py")
        self.assertEqual(r.returncode, 0, r)
        want = json.loads(r.stdout.splitlines()[-1])
        recs = self.records(log_dir="logs")
        last = [rec for rec in recs if rec.func == "shapes"][-1]
        got = last.vars("Local")
        for name, (text, items) in want.items():
            self.assertIn(name, got)
            self.assertEqual(got[name][1], log_text(text, 500, items),
                             "variable %s" % name)
        self.assertEqual(got["a"][0], "list")
        self.assertEqual(got["b"][0], "tuple")

    def test_items_replaced_in_a_callee_are_seen(self):
        # The callee frees the list's item before making the next one, so
        # the new float is usually made at the freed address: the change
        # must still show in the caller.
        self.script("callee.py", textwrap.dedent(CALLEE_REPLACES))
        r = helpers.python(self.tmp, "callee.py")
        self.assertEqual(r.returncode, 0, r)
        shown = changed_values(r.stdout, "data", "list")
        self.assertEqual(shown, [str([float(k)]) for k in range(8)], shown)

    def test_globals_changed_in_place_are_seen(self):
        # TOTALS is changed in place by an untraced callee: the module's
        # dict is the same (its version tag does not move), its text is
        # not; every state main() saw must show, in order.
        self.script("glob.py", textwrap.dedent(GLOBALS_IN_PLACE))
        r = helpers.python(self.tmp, "glob.py")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(changed_values(r.stdout, "TOTALS", "dict"),
                         r.stderr.splitlines())

    def test_a_container_changed_by_its_own_str_is_shown_as_it_is(self):
        # str(box) runs code that removes an item: what the log shows later
        # must be the list as it is, not the text of the moment before.
        self.script("race.py", textwrap.dedent(STR_CHANGES_CONTAINER))
        r = helpers.python(self.tmp, "race.py")
        self.assertEqual(r.returncode, 0, r)
        recs = parse_log("\n".join(l for l in r.stdout.split("\n")
                                    if not l.startswith("FINAL")))
        last = [rec for rec in recs if rec.func == "f"][-1]
        self.assertIn("FINAL [1, 2]", r.stdout)
        self.assertEqual(last.vars("Local")["box"], ("list", "[1, 2]"))

    def test_str_of_a_half_built_object_changes_nothing(self):
        # While an __init__ of a traced class runs, its object shows as its
        # own str() shows it at that moment (an error is unprintable, as in
        # 0.3.0), but what that str() changed in the object (the cached
        # size) is undone: the program's output is as untraced.
        self.script("half.py", textwrap.dedent(HALF_BUILT))
        for mode in ("CHANGED", "ALL"):
            r = helpers.python(self.tmp, "half.py", mode)
            self.assertEqual(r.returncode, 0, r)
            self.assertEqual(r.stdout, "Bag bag of 3 Bag bag of 2 3 2 2\n")
            shown = []      # (function, name, type, text), in order
            for rec in self.records(log_dir=mode):
                for line in rec.sections.get("Local", []):
                    m = re.match(r"^(?:\[NEW\] |\[CHANGED\] )?(\w+): "
                                 r"(\w+) :: (?:.* -> )?(.*)$", line)
                    shown.append((rec.func,) + m.groups())
            inside = {t for f, n, _, t in shown
                      if n == "self" and f in ("__init__", "_fill")}
            self.assertIn("<unprintable Bag: 'Bag' object has no attribute "
                          "'name'>", inside, mode)
            self.assertIn("Bag bag of 0", inside, mode)
            self.assertIn(("main", "b", "Bag", "Bag bag of 3"), shown)
            self.assertIn(("main", "c", "Cell", "Bag bag of 2"), shown)

if __name__ == "__main__":
    unittest.main()
