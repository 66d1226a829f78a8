"""Where the steptraced service listens by default (docs/COLLECTOR.md
section 4): one definition for the agent side (_collector) and `steptrace
daemon`."""
import os


def service_socket():
    """$XDG_RUNTIME_DIR/steptrace/steptraced.sock when XDG_RUNTIME_DIR is an
    absolute path, else /tmp/steptrace-<uid>/steptraced.sock."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and xdg.startswith("/"):
        return os.path.join(xdg, "steptrace", "steptraced.sock")
    return "/tmp/steptrace-%d/steptraced.sock" % os.getuid()
