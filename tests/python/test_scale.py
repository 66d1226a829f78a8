"""Programs of a real program's shape, at counts where lookups by walking
a list stop being cheap: hundreds of modules (each with its own globals)
and thousands of generators alive between their steps.  What is asserted
is the log, not a time: each module's function shows that module's
globals, and each generator resumes with the state it was suspended with
(so CHANGED mode reports it as changed, not as new).
"""
import os
import textwrap
import unittest

from helpers import TempDirTest, parse_log
import helpers

MODULES = 400
GENERATORS = 3000

MODULE = """\
NAME = "m{k}"
def f(x):
    y = x + {k}
    return y
"""

MANY_MODULES = """\
    import importlib, sys
    from steptrace import Tracer, LogOutput, VariableMode
    sys.path.insert(0, "mods")
    mods = [importlib.import_module("m%d" % k) for k in range(NMODS)]

    def work():
        total = 0
        for k in list(range(NMODS)) + list(range(NMODS - 1, -1, -1)):
            total += mods[k].f(1)
        return total

    with Tracer(log_output=LogOutput.STDOUT,
                variable_mode=VariableMode.ALL):
        work()
    """

MANY_GENERATORS = """\
    import sys
    from steptrace import Tracer, LogOutput, VariableMode

    def gen(k):
        x = k
        while True:
            x += 1
            yield x

    def work(n):
        gs = [gen(k) for k in range(n)]
        for g in gs:
            next(g)
        total = 0
        for g in reversed(gs):
            total += next(g)
        del gs, g
        return total

    with Tracer(log_output=LogOutput.STDOUT,
                variable_mode=VariableMode.CHANGED):
        total = work(%(n)d)
    print("TOTAL", total, file=sys.stderr)
    """


class ScaleTest(TempDirTest):

    def test_hundreds_of_modules_show_their_own_globals(self):
        os.makedirs(self.path("mods"))
        for k in range(MODULES):
            helpers.write(self.path("mods", "m%d.py" % k),
                          MODULE.format(k=k))
        self.script("main.py", textwrap.dedent(MANY_MODULES).replace(
            "NMODS", str(MODULES)))
        r = helpers.python(self.tmp, "main.py")
        self.assertEqual(r.returncode, 0, r)
        seen = {}
        for rec in parse_log(r.stdout):
            if rec.func != "f":
                continue
            k = int(os.path.basename(rec.file)[1:-3])
            self.assertEqual(rec.vars("Global").get("NAME"),
                             ("str", "m%d" % k), rec.lines)
            seen[k] = seen.get(k, 0) + 1
        # Two calls of each f, two lines each.
        self.assertEqual(seen, {k: 4 for k in range(MODULES)})

    def test_thousands_of_suspended_generators_resume_with_their_state(self):
        self.script("gens.py",
                    textwrap.dedent(MANY_GENERATORS) % {"n": GENERATORS})
        r = helpers.python(self.tmp, "gens.py")
        self.assertEqual(r.returncode, 0, r)
        n = GENERATORS
        self.assertEqual(r.stderr, "TOTAL %d\n" % sum(k + 2 for k in range(n)))
        recs = [x for x in parse_log(r.stdout) if x.func == "gen"]
        new_k = [line for x in recs for line in x.lines
                 if line.startswith("[NEW] k: ")]
        # Once per generator: a resumption that lost its state would show
        # k as new again.
        self.assertEqual(len(new_k), n)
        # The second x += 1 of each generator, resumed in reverse order.
        changed = [line for x in recs for line in x.lines
                   if line.startswith("[CHANGED] x: ")]
        self.assertEqual(len(changed), 2 * n)
        self.assertEqual(changed[n:],
                         ["[CHANGED] x: int :: %d -> %d" % (k + 1, k + 2)
                          for k in range(n - 1, -1, -1)])


if __name__ == "__main__":
    unittest.main()
