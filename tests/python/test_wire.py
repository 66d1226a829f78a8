"""The wire codec as Python sees it: steptrace._agent.wire_encode() and
wire_decode(), common's encoders and validated decoder, which the control
client (steptrace daemon status, steptrace tail) speaks through.

Every control message goes through a round trip with the values at the
edges of its fields; the frames are the bytes common writes; a buffer
that is not a valid frame (crafted, cut, mutated, random) is a ValueError,
never a crash: that part runs in a child process, so a crash is reported
as this test failing with the signal.
"""
import os
import re
import tempfile
import unittest

import helpers
from steptrace import _agent, daemonctl

WIRE_H = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                      os.pardir, "common", "include", "steptrace", "wire.h")

BIG = 2 ** 64 - 1
# Strings at the msgpack length boundaries (fixstr, str8, str16, str32),
# bytes that are not UTF-8, and a str holding such bytes (surrogateescape,
# as os.fsdecode gives for a file name).
STRINGS = ["", "x", "é" * 15, "y" * 31, "z" * 32, "w" * 255, "v" * 256,
           "u" * 65535, "t" * 65536, b"\xff\xfe\x00", "caf\udce9.log"]
INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, BIG]


def wire_form(value):
    """What wire_decode() gives for a field wire_encode() was given."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, (list, tuple)):
        return [wire_form(v) for v in value]
    return value


def control_messages():
    """Every control message, with each field at its edges."""
    a = _agent
    for i, n in enumerate(INTS):
        s = STRINGS[i % len(STRINGS)]
        t = STRINGS[(i + 3) % len(STRINGS)]
        yield [a.MSG_HELLO, a.WIRE_VERSION, n, s, INTS[-1 - i], i % 4]
        yield [a.MSG_STATUS, n]
        # A counter's name is a C string: no NUL.
        name = wire_form(s).replace(b"\0", b"0")
        yield [a.MSG_STATS, n, [(name, n), ("records_in", i)] * i]
        yield [a.MSG_TAIL, n, s]
        yield [a.MSG_TEXT, n, s, t]
    yield [a.MSG_STATS, 1, []]
    yield [a.MSG_STATS, 2, [("n%d" % k, k) for k in range(70000)]]


class ConstantsTest(unittest.TestCase):

    def test_the_message_types_are_the_headers(self):
        try:
            with open(WIRE_H, encoding="utf-8") as f:
                header = f.read()
        except OSError:
            self.skipTest("no source tree next to the tests")
        types = re.findall(r"^\s*XX\((\w+), (\d+)[,)]", header, re.M)
        self.assertGreater(len(types), 10)
        for name, value in types:
            self.assertEqual(getattr(_agent, "MSG_" + name), int(value), name)
        for name in ("VERSION", "HEADER_SIZE"):
            m = re.search(r"#define ST_WIRE_%s (\d+)" % name, header)
            self.assertEqual(getattr(_agent, "WIRE_" + name),
                             int(m.group(1)))
        self.assertEqual(_agent.WIRE_MAX_FRAME, 16 * 1024 * 1024)
        self.assertEqual(_agent.WIRE_VERSION, _agent.PROTOCOL_VERSION)

    def test_the_control_client_has_no_codec_of_its_own(self):
        self.assertIs(daemonctl.wire_encode, _agent.wire_encode)
        self.assertIs(daemonctl.wire_decode, _agent.wire_decode)
        self.assertEqual(daemonctl.MSG_HELLO, _agent.MSG_HELLO)


class RoundTripTest(unittest.TestCase):

    def test_every_control_message(self):
        count = 0
        for msg in control_messages():
            frame = _agent.wire_encode(*msg)
            self.assertEqual(int.from_bytes(frame[:4], "big"),
                             len(frame) - 4)
            msgs, used = _agent.wire_decode(frame)
            self.assertEqual(used, len(frame))
            self.assertEqual(msgs, [wire_form(msg)])
            # What was decoded encodes to the same frame.
            self.assertEqual(_agent.wire_encode(*msgs[0]), frame)
            count += 1
        self.assertEqual(count, 5 * len(INTS) + 2)

    def test_the_bytes_are_commons(self):
        a = _agent
        self.assertEqual(a.wire_encode(a.MSG_STATUS, 7),
                         b"\x00\x00\x00\x03\x92\x0d\x07")
        self.assertEqual(
            a.wire_encode(a.MSG_HELLO, a.WIRE_VERSION, 300, "ctl", 0, 2),
            b"\x00\x00\x00\x0c\x96\x01" + bytes([a.WIRE_VERSION]) +
            b"\xcd\x01\x2c\xa3ctl\x00\x02")
        self.assertEqual(a.wire_encode(a.MSG_TAIL, 0, b""),
                         b"\x00\x00\x00\x04\x93\x0f\x00\xa0")
        self.assertEqual(
            a.wire_encode(a.MSG_STATS, 1, [("n", 2)]),
            b"\x00\x00\x00\x08\x93\x0e\x01\x91\x92\xa1n\x02")
        self.assertEqual(a.wire_encode(a.MSG_TEXT, 5, "p", "t\n"),
                         b"\x00\x00\x00\x08\x94\x10\x05\xa1p\xa2t\n")

    def test_a_stream_in_pieces(self):
        msgs = list(control_messages())[:12]
        stream = b"".join(_agent.wire_encode(*m) for m in msgs)
        first = len(_agent.wire_encode(*msgs[0]))
        # Not all of the first frame: nothing yet.
        for cut in range(first):
            self.assertEqual(_agent.wire_decode(stream[:cut]), ([], 0))
        # One frame at a time, whatever follows it; any bytes-like buffer.
        got = []
        buf = bytearray()
        for i in range(0, len(stream), 7):
            buf += stream[i:i + 7]
            while True:
                with memoryview(buf) as view:
                    frame_msgs, used = _agent.wire_decode(view)
                if not used:
                    break
                got.extend(frame_msgs)
                del buf[:used]
        self.assertEqual(buf, b"")
        self.assertEqual(got, [wire_form(m) for m in msgs])

    def test_several_messages_in_one_frame(self):
        a = _agent
        one = a.wire_encode(a.MSG_TEXT, 1, "p", "a\n")[4:]
        two = a.wire_encode(a.MSG_TEXT, 0, "", "b\n")[4:]
        payload = one + two
        frame = len(payload).to_bytes(4, "big") + payload
        self.assertEqual(a.wire_decode(frame + b"\x00"),
                         ([[a.MSG_TEXT, 1, b"p", b"a\n"],
                           [a.MSG_TEXT, 0, b"", b"b\n"]], len(frame)))


class EncodeRefusesTest(unittest.TestCase):

    def assertRefused(self, exc, *args):
        with self.assertRaises(exc, msg=repr(args)):
            _agent.wire_encode(*args)

    def test_what_is_not_a_control_message(self):
        a = _agent
        self.assertRefused(TypeError)
        self.assertRefused(ValueError, 0)
        self.assertRefused(ValueError, 99, 1)
        self.assertRefused(ValueError, a.MSG_STEP, 1, 1, 1, 1, None, None)
        self.assertRefused(ValueError, -1)
        self.assertRefused(TypeError, "13", 1)
        self.assertRefused(TypeError, a.MSG_STATUS)
        self.assertRefused(TypeError, a.MSG_STATUS, 1, 2)

    def test_bad_fields(self):
        a = _agent
        self.assertRefused(ValueError, a.MSG_STATUS, -1)
        self.assertRefused(ValueError, a.MSG_STATUS, 2 ** 64)
        self.assertRefused(TypeError, a.MSG_STATUS, True)
        self.assertRefused(TypeError, a.MSG_STATUS, 1.0)
        self.assertRefused(TypeError, a.MSG_STATUS, None)
        self.assertRefused(ValueError, a.MSG_HELLO, a.WIRE_VERSION + 1, 1,
                           "p", 0, 0)
        self.assertRefused(TypeError, a.MSG_HELLO, a.WIRE_VERSION, 1, 5, 0, 0)
        self.assertRefused(ValueError, a.MSG_HELLO, a.WIRE_VERSION, 1, "p", 0,
                           2 ** 32)
        self.assertRefused(TypeError, a.MSG_TAIL, 0, ["*"])
        self.assertRefused(ValueError, a.MSG_TEXT, 0, "p", "\ud800")
        self.assertRefused(TypeError, a.MSG_STATS, 1, 5)
        self.assertRefused(ValueError, a.MSG_STATS, 1, [("a",)])
        self.assertRefused(ValueError, a.MSG_STATS, 1, [("a\0b", 1)])
        self.assertRefused(ValueError, a.MSG_STATS, 1, [("a", -1)])
        self.assertRefused(ValueError, a.MSG_TEXT, 0, "p",
                           b"x" * (a.WIRE_MAX_FRAME + 1))


# Run in a child: every buffer must decode or raise ValueError.
HOSTILE = r"""
import random, sys
from steptrace import _agent as a

def frame(payload):
    return len(payload).to_bytes(4, "big") + payload

crafted = [
    b"\x00\x00\x00\x00",                         # empty frame
    b"\xff\xff\xff\xff",                         # larger than allowed
    (a.WIRE_MAX_FRAME + 1).to_bytes(4, "big"),
    frame(b"\xc1"),                              # never used byte
    frame(b"\x05"),                              # not an array
    frame(b"\x90"),                              # empty message
    frame(b"\x91\x63"),                          # unknown type
    frame(b"\x91\x0d"),                          # STATUS without token
    frame(b"\x93\x0d\x01\x02"),                  # STATUS, a field too many
    frame(b"\x92\x0d\xa1x"),                     # token is a string
    frame(b"\x92\x0d\xd3" + b"\xff" * 8),        # negative token
    frame(b"\x92\x0d\xcb" + b"\x00" * 8),        # float token
    frame(b"\x93\x0e\x01\x91\x93\xa1n\x01\x02"), # counter of 3
    frame(b"\x93\x0e\x01\x91\x92\x01\x01"),      # counter name an int
    frame(b"\x93\x0e\x01\xdd\xff\xff\xff\xff"),  # 4G counters announced
    frame(b"\x93\x0f\x00\xdb\xff\xff\xff\xff"),  # 4 GB glob announced
    frame(b"\x94\x10\x01\xa1p\xc0"),             # TEXT text nil
    frame(b"\x93\x0e\x01" + b"\x91" * 40 + b"\x01"),  # deep nesting
    frame(b"\x92\x0d\x01" + b"\x92"),            # a message cut short
    frame(b"\x97\x06\x01\x01\x01\x01\xc0\xc0"),  # a STEP: not control
    frame(b"\x93\x02\x01\xa1s"),                 # a STR: not control
]
valid = [a.wire_encode(a.MSG_HELLO, a.WIRE_VERSION, 42, "prog", 0, 0),
         a.wire_encode(a.MSG_STATS, 3, [("records_in", 7), ("pid", 1)]),
         a.wire_encode(a.MSG_TAIL, 9, "*/x/*"),
         a.wire_encode(a.MSG_TEXT, 9, "/l/tracer.log", "Step 1\n" * 5)]
rng = random.Random(12)
bufs = list(crafted)
for _ in range(20000):
    b = bytearray(rng.choice(valid))
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(b))
        b[i] = rng.randrange(256) if rng.random() < 0.7 else b[i] ^ 0x80
    if rng.random() < 0.3:
        b = b[:rng.randrange(len(b) + 1)]
    if rng.random() < 0.2:
        n = len(b) - 4
        b[:4] = max(n, 0).to_bytes(4, "big")
    bufs.append(bytes(b))
for _ in range(5000):
    n = rng.randrange(1, 40)
    bufs.append(n.to_bytes(4, "big") +
                bytes(rng.randrange(256) for _ in range(n)))
refused = decoded = 0
for b in bufs:
    try:
        msgs, used = a.wire_decode(b)
    except ValueError:
        refused += 1
        continue
    assert isinstance(msgs, list) and 0 <= used <= len(b), (b, msgs, used)
    assert (used == 0) == (msgs == []), (b, msgs, used)
    for m in msgs:
        assert m[0] in (a.MSG_HELLO, a.MSG_STATUS, a.MSG_STATS, a.MSG_TAIL,
                        a.MSG_TEXT), m
        assert all(isinstance(f, (int, bytes, list)) for f in m), m
    decoded += 1
for b in crafted:
    try:
        a.wire_decode(b)
    except ValueError:
        continue
    sys.exit("accepted: %r" % b)
print("refused %d decoded %d" % (refused, decoded))
"""


class HostileBufferTest(unittest.TestCase):

    def test_a_hostile_buffer_is_a_value_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = helpers.run([helpers.PYTHON, "-c", HOSTILE], tmp)
        self.assertEqual(r.returncode, 0, r)
        m = re.match(r"refused (\d+) decoded (\d+)$", r.stdout.strip())
        self.assertIsNotNone(m, r)
        # Most mutations are refused; some still make a valid frame.
        self.assertGreater(int(m.group(1)), 10000, r)
        self.assertGreater(int(m.group(2)), 0, r)

    def test_not_a_buffer(self):
        for bad in ("text", 5, None, [1, 2]):
            with self.assertRaises(TypeError):
                _agent.wire_decode(bad)


if __name__ == "__main__":
    unittest.main()
