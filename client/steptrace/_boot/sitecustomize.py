"""steptrace's start-up hook for a child process (steptrace/_children.py).

A traced run puts this directory first on a Python child's PYTHONPATH and
its settings in STEPTRACE_CHILD.  At the child's start-up (site imports
sitecustomize), before any of its own code runs, this takes both out
again (os.environ, PYTHONPATH as it was, sys.path), imports the
sitecustomize it shadows, if any, and starts tracing the rest of the
process.  A Python that cannot import steptrace runs unchanged.
"""


def _steptrace_boot():
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    raw = os.environ.pop("STEPTRACE_CHILD", None)
    spec = None
    if raw:
        try:
            import json
            spec = json.loads(raw)
        except ValueError:
            spec = None
    # PYTHONPATH as the program set it.
    old = spec.get("pythonpath") if isinstance(spec, dict) else None
    current = os.environ.get("PYTHONPATH")
    if old is not None:
        os.environ["PYTHONPATH"] = old
    elif current is not None:
        rest = [p for p in current.split(os.pathsep)
                if p and os.path.abspath(p) != here]
        if rest:
            os.environ["PYTHONPATH"] = os.pathsep.join(rest)
        else:
            del os.environ["PYTHONPATH"]
    sys.path[:] = [p for p in sys.path
                   if os.path.abspath(p or os.curdir) != here]
    # The sitecustomize this one stands in front of.
    me = sys.modules.pop("sitecustomize", None)
    failure = None
    found = True
    try:
        import sitecustomize  # noqa: F401
    except ImportError as e:
        if e.name != "sitecustomize":
            failure = e
        else:
            found = False
        if me is not None:
            sys.modules["sitecustomize"] = me
    except Exception as e:  # noqa: B902 - site reports it, as without us
        failure = e
        if me is not None:
            sys.modules.setdefault("sitecustomize", me)
    if isinstance(spec, dict):
        _start(spec)
    if failure is not None:
        raise failure
    return found


def _start(spec):
    import os
    import sys

    def forget():
        for name in list(sys.modules):
            if name == "steptrace" or name.startswith("steptrace."):
                del sys.modules[name]

    try:
        import steptrace._children as children
    except ImportError:
        forget()
        # The parent's copy, if this is the same Python version.
        pkg = spec.get("pkg")
        if not pkg or list(sys.version_info[:2]) != spec.get("version"):
            return
        sys.path.append(pkg)
        try:
            import steptrace._children as children
        except ImportError:
            forget()
            return
        finally:
            try:
                sys.path.remove(pkg)
            except ValueError:
                pass
    try:
        children.start_child(spec)
    except Exception as e:  # noqa: B902 - never stop the program
        try:
            sys.stderr.write("steptrace: not tracing process %d: %s\n"
                             % (os.getpid(), e))
        except Exception:
            pass


if not _steptrace_boot():
    # There is no sitecustomize of the program's: this module goes too
    # (the import system takes it out of sys.modules again), and site
    # passes over an ImportError of that name as over a missing module.
    raise ImportError("no sitecustomize but steptrace's start-up hook",
                      name="sitecustomize")
del _steptrace_boot, _start
