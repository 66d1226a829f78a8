"""The package's command lines: the one UsageError, and the one way of
reading options, of `steptrace run` (cli.py) and `steptrace daemon` /
`steptrace tail` (daemonctl.py).

An option is NAME, or NAME=VALUE for one that takes a value, whose value
may also be the next token (`--socket PATH`).
"""
import sys


class UsageError(Exception):
    """A bad command line: reported in one line, exit status 2."""


def needs_value(name):
    """The error for valued option `name` given without its value."""
    return UsageError("%s needs a value" % name)


class Args:
    """The tokens of a command line, read one at a time (a for loop)."""

    def __init__(self, argv):
        self._argv = list(argv)
        self._next = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._next >= len(self._argv):
            raise StopIteration
        self._next += 1
        return self._argv[self._next - 1]

    def peek(self):
        """The next token, left unread, or None at the end."""
        if self._next >= len(self._argv):
            return None
        return self._argv[self._next]

    def rest(self):
        """The tokens not read yet, which are then read."""
        rest = self._argv[self._next:]
        self._next = len(self._argv)
        return rest

    def value(self, eq, inline):
        """The value of the valued option just read, split as
        `name, eq, inline = tok.partition("=")`: `inline` when the token
        had "=", else the next token (read); None when there is none."""
        if eq:
            return inline
        return next(self, None)


def parse_options(argv, valued, flags, help_text, prog):
    """Reads a command line of options and operands into (options,
    operands): `valued` maps each option that takes a value to its key in
    options, `flags` each flag to its key (True when given).  -h / --help
    writes help_text and exits with status 0.  UsageError for an unknown
    option or a value missing or empty."""
    opts = {}
    operands = []
    args = Args(argv)
    for tok in args:
        name, eq, inline = tok.partition("=")
        if tok in ("-h", "--help"):
            sys.stdout.write(help_text)
            raise SystemExit(0)
        if name in valued:
            value = args.value(eq, inline)
            if not value:
                raise needs_value(name)
            opts[valued[name]] = value
        elif tok in flags:
            opts[flags[tok]] = True
        elif tok.startswith("-"):
            raise UsageError("unknown option %r (see %s --help)"
                             % (tok, prog))
        else:
            operands.append(tok)
    return opts, operands
