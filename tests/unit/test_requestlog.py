"""The request log stays text: what a NAS sends in a name (controls, bytes that are not
UTF-8) is escaped, one line per request, and the escaping can be read back exactly."""

from __future__ import annotations

import io
import random
import re

import pytest

from test_receiver import SECRET, answer, receiver  # noqa: F401 (a fixture)
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.crypto import encrypt_user_password
from vpop.logs import printable
from vpop.pipeline.requestlog import RequestLog

LINE = re.compile(r'\S+ vpop\.requests client=(\S+) code=(\S+) user=("(?:[^"\\]|\\.)*"|\S+) ')


def unescape(value: str) -> bytes:
    """A logged value back to the bytes it was written from."""
    if value == "-":
        return b""
    if value.startswith('"'):
        value = value[1:-1]
    out = bytearray()
    at = 0
    while at < len(value):
        char = value[at]
        if char != "\\":
            out += char.encode()
            at += 1
        elif value[at + 1] in '\\"':
            out += value[at + 1].encode()
            at += 2
        elif value[at + 1] == "x":
            code = int(value[at + 2:at + 4], 16)
            # below 0x80 a character; above, a byte that was not UTF-8
            out += bytes([code])
            at += 4
        else:  # \uNNNN: a character
            out += chr(int(value[at + 2:at + 6], 16)).encode()
            at += 6
    return bytes(out)


def logged(names: list[bytes]) -> str:
    stream = io.StringIO()
    log = RequestLog(stream, clock=lambda: 0.0)
    for name in names:
        log.write("nas1", "Access-Request", name.decode("utf-8", "surrogateescape"), "", "pap",
                  "reject", "unknown subscriber", 1.0)
    log.flush()
    return stream.getvalue()


@pytest.mark.parametrize("name,shown", [
    (b"alice", "alice"),
    (b"alice smith", '"alice smith"'),
    (b"\x1b[2Jowned", '"\\x1b[2Jowned"'),
    (b"nul\x00here", '"nul\\x00here"'),
    (b"line\nbreak", '"line\\x0abreak"'),
    (b"latin-1 \xe9t\xe9", '"latin-1 \\xe9t\\xe9"'),
    ("jürgen".encode(), "jürgen"),
    ("c1\u0085".encode(), '"c1\\u0085"'),
    ("rtl\u202eevil".encode(), '"rtl\\u202eevil"'),
    (b'quote"and\\back', '"quote\\"and\\\\back"'),
    (b"CORP\\alice", '"CORP\\\\alice"'),
])
def test_names_are_logged_as_text(name, shown):
    text = logged([name])
    assert LINE.match(text).group(3) == shown


def test_random_names_leave_one_text_line_each_that_reads_back_exactly():
    rng = random.Random(16)
    names = [rng.randbytes(rng.randrange(1, 40)) for _ in range(2000)]
    text = logged(names)
    raw = text.encode("utf-8")  # no surrogates left: valid UTF-8
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", raw)
    lines = text.splitlines()
    assert len(lines) == len(names)
    for name, line in zip(names, lines):
        value = LINE.match(line).group(3)
        assert unescape(value) == name


def test_printable_leaves_text_alone_and_escapes_only_what_a_terminal_obeys():
    assert printable("CORP\\alice jürgen = \"x\"") == "CORP\\alice jürgen = \"x\""
    assert printable("a\x1bb\x7fc\udcffd") == "a\\x1bb\\x7fc\\xffd"


def test_the_receiver_logs_the_name_as_the_nas_sent_it(receiver):  # noqa: F811
    stream = io.StringIO()
    receiver.request_log = RequestLog(stream)
    auth = random.randbytes(16)
    attrs = (codec.attribute(A.USER_NAME, b"\x1b]0;evil\x07\xff")
             + codec.attribute(A.USER_PASSWORD, encrypt_user_password(b"x", SECRET, auth)))
    data = codec.encode_request(codec.ACCESS_REQUEST, 1, attrs, SECRET, authenticator=auth,
                                message_authenticator=True)
    answer(receiver, data, auth)
    receiver.request_log.flush()
    assert 'user="\\x1b]0;evil\\x07\\xff"' in stream.getvalue()
