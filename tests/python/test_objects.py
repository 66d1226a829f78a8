"""Objects whose str() is the program's own code (issue 15, real code):
str() runs again only when something the object holds changed -- its
attributes, its slots, the lists, dicts and sets and objects it reaches --
checked in C without running the program's code; and a method called again
and again on an unchanged object does not render its `self` again.  Every
change the object's str() shows must still be reported at the step where
it happens.  Each test runs a real script and counts the program's own
__str__ calls or compares the log with what Python prints."""
import textwrap
import unittest

from helpers import TempDirTest
import helpers
from test_values import changed_values

# A tree of nodes whose str() shows a count deep inside: every kind of
# holder is changed in turn, each by an untraced helper (so that only the
# caller's next step can show it).
DEEP = """\
    import collections, sys
    from steptrace import Tracer, LogOutput, VariableMode

    CALLS = [0]

    class Leaf:
        __slots__ = ("n",)
        def __init__(self, n):
            self.n = n

    class Bag(list):
        pass

    class Node:
        def __init__(self):
            self.kids = [{"leaf": Leaf(0)}]
            self.tags = set()
            self.bag = Bag()
            self.opaque = collections.deque()
        def __str__(self):
            CALLS[0] += 1
            return "Node(%d %s %d %d%s)" % (
                self.kids[0]["leaf"].n, sorted(self.tags), len(self.bag),
                len(self.opaque), getattr(self, "label", ""))

    def mutate(node, k):
        if k == 0:
            node.kids[0]["leaf"].n += 1        # a slot, three levels down
        elif k == 1:
            node.kids[0]["leaf"] = Leaf(7)     # a dict item replaced
        elif k == 2:
            node.tags.add("t")                 # a set
        elif k == 3:
            node.bag.append(1)                 # a list subclass
        elif k == 4:
            node.kids.append({})               # a list (not shown)
        elif k == 5:
            node.extra = 1                     # a new attribute (not shown)
        elif k == 6:
            node.opaque.append(1)              # held by a C object
        elif k == 7:
            node.label = " x"                  # an attribute added
        elif k == 8:
            node.label = " y"                  # an attribute rebound

    def main():
        node = Node()
        for k in range(9):
            mutate(node, k)
            x = k
        print("CALLS", CALLS[0], file=sys.stderr)

    with Tracer(log_output=LogOutput.STDOUT,
                variable_mode=VariableMode.CHANGED,
                tracable_functions=["main"]):
        main()
    """

# An unchanged object whose str() is costly, in scope for many lines and as
# `self` of many short calls: its str() runs once per state.
STILL = """\
    import sys
    from steptrace import Tracer, LogOutput, VariableMode

    CALLS = [0]

    class View:
        def __init__(self, data):
            self.data = data
        def __str__(self):
            # Costly, as a parser's or a model's __str__ is (a walk of
            # what the object holds is cheaper; a str() cheaper than the
            # walk would just be called).
            CALLS[0] += 1
            n = 0
            for _ in range(60):
                for k in self.data:
                    for x in self.data[k]:
                        n += 1
            return "View(%d)" % len(self.data)
        def get(self, k):
            return self.data[k]

    def main():
        v = View({k: [k] * 3 for k in range(100)})
        total = 0
        for k in range(300):
            total += v.get(k % 100)[0]
        v.data[100] = [1]
        total += 1
        print("CALLS", CALLS[0], file=sys.stderr)

    with Tracer(log_output=LogOutput.FILE, log_dir="logs",
                variable_mode=getattr(VariableMode, sys.argv[1])):
        main()
    """


class ObjectsTest(TempDirTest):

    def test_every_change_an_object_shows_is_reported(self):
        self.script("deep.py", textwrap.dedent(DEEP))
        r = helpers.python(self.tmp, "deep.py")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(changed_values(r.stdout, "node", "Node"), [
            "Node(1 [] 0 0)", "Node(7 [] 0 0)", "Node(7 ['t'] 0 0)",
            "Node(7 ['t'] 1 0)", "Node(7 ['t'] 1 1)", "Node(7 ['t'] 1 1 x)",
            "Node(7 ['t'] 1 1 y)"])

    def test_str_runs_once_per_change(self):
        self.script("still.py", textwrap.dedent(STILL))
        for mode in ("CHANGED", "ALL"):
            r = helpers.python(self.tmp, "still.py", mode)
            self.assertEqual(r.returncode, 0, r)
            # Two states after __init__ (made, changed once), shown over
            # 300 calls: str() runs some times while the agent learns
            # what it costs against a walk (the first ones, in __init__,
            # raise at once; the first walks fault pages in), then once
            # per state: 8-18 calls here, 900 before.
            calls = int(r.stderr.split()[-1])
            self.assertLessEqual(calls, 30, (mode, r.stderr))
            log = self.log(log_dir="logs")
            self.assertIn("View(101)", log)
            self.assertGreater(log.count("self: View :: View(100)"), 250
                               if mode == "ALL" else 0)


if __name__ == "__main__":
    unittest.main()
