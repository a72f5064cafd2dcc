"""The accounting journal: acknowledged records, on disk, before the ledger applies them.

An Accounting-Response promises that the record is stored (RFC 2866 §4.1). Applying
a record to sessions, history, rollups, gauges and events takes several times longer
than storing it, so vpop stores it first here, a group of records per write and
fdatasync, acknowledges it, and lets a separate process (the ledger,
vpop/server/ledger.py) apply the journal to the database in large batches. The
ledger commits how far it got (`acct_journal.applied_id`) in the same transaction as
what it applied, so every journaled record is applied exactly once, across crashes.

A journal is a directory of its own, written by one process (an flock on
`writer.lock`): each worker has one (`worker_journal`), so no worker's write waits for
another's. In it, `stream` names the journal (the ledger keeps its progress per
stream; a journal that is replaced is a new stream) and segment files hold the
entries. A segment (`seg-<first id>`) starts with a header (magic, first id, then the
durable mark: where its entries end and the last id, with a checksum) and goes on
with frames: length, id, stamp (ns since the epoch, when stored: the ledger merges the
journals by it, see `causal_cut`), body, CRC-32. Ids are consecutive and never
reused. The writer appends a group with one pwrite and one fdatasync, and only then
moves the mark: readers never read past it, so the ledger never applies what a crash
could still take away. On opening, the writer makes what is in the last segment
durable, keeps every whole frame, and zeroes the rest, so no fragment of a write a
crash interrupted can be taken for a later entry.

Writing over a file's existing blocks is cheaper to sync than growing it (no
file-system metadata to commit), so applied segments are not deleted but kept as
spares (`spare-*`, up to SPARES) for the writer to reuse, and while none is ready the
writer zero-fills one in the background before its segment is full. Entries in a
spare's old frames carry older ids than its new first id, so they are never read.
This is about three times cheaper a group than the SQLite file the journal was
before (bench/HISTORY.md).
"""

from __future__ import annotations

import bisect
import fcntl
import glob
import logging
import os
import pickle
import re
import struct
import threading
import time
import uuid
import zlib
from dataclasses import fields
from typing import Iterator

from vpop.accounting.records import AcctRecord
from vpop.accounting.routing import Routing
from vpop.errors import VpopError
from vpop.isp.acct_forward import ForwardOrder
from vpop.store.files import private_dirs, private_opener

log = logging.getLogger(__name__)

FORMAT = 1  # of an entry's body; a journal written by another format is refused
_FIELDS = tuple(f.name for f in fields(AcctRecord) if f.name != "routing")


class JournalError(VpopError):
    """The journal file cannot be used (not writable, another format, not a journal)."""


def encode_entry(record: AcctRecord, forward: ForwardOrder | None) -> bytes:
    """One record and what it owes a proxy-mode ISP, as plain values (no classes pickled)."""
    routing = record.routing
    values = tuple(getattr(record, name) for name in _FIELDS)
    owed = None if forward is None else (forward.isp, forward.session_key, forward.attrs,
                                         forward.delay, forward.received)
    return pickle.dumps((FORMAT, values, (routing.isp, routing.mode, routing.reason), owed),
                        protocol=5)


def decode_entry(body: bytes) -> tuple[AcctRecord, ForwardOrder | None]:
    version, values, routing, owed = pickle.loads(body)
    if version != FORMAT:
        raise JournalError(f"journal entry of format {version}, this vpop reads {FORMAT}")
    record = AcctRecord(**dict(zip(_FIELDS, values)),
                        routing=Routing(isp=routing[0], mode=routing[1], reason=routing[2]))
    if owed is None:
        return record, None
    if isinstance(owed, dict):  # written by a vpop that kept the order as a dict
        return record, ForwardOrder(**owed)
    isp, session_key, attrs, delay, received = owed
    return record, ForwardOrder(isp=isp, session_key=session_key, attrs=attrs, delay=delay,
                                received=received)


def worker_journal(path: str, index: int) -> str:
    """The journal file of worker `index`: the configured file for worker 0, beside it
    `<stem>-<index><suffix>` for the others."""
    if index == 0:
        return path
    stem, suffix = os.path.splitext(path)
    return f"{stem}-{index}{suffix}"


def journal_files(path: str, workers: int = 1) -> list[str]:
    """The journal files of `workers` workers, and any others beside them that an
    earlier run with more workers left (their entries are still to be applied)."""
    stem, suffix = os.path.splitext(path)
    pattern = re.compile(re.escape(os.path.basename(stem)) + r"-([1-9][0-9]*)"
                         + re.escape(suffix) + "$")
    beside = glob.glob(glob.escape(stem) + "-*" + glob.escape(suffix))
    found = {int(m.group(1)) for name in beside if (m := pattern.match(os.path.basename(name)))}
    return [worker_journal(path, index) for index in sorted(found | set(range(workers)))]


Row = tuple  # (id, stamp, body) of an entry
# A row stamped this long (ns) after `now` was stored before the wall clock was set
# back: applied at once rather than held until the clock catches up with it.
CLOCK_STEP = 2_000_000_000


def causal_cut(reads: list[list[Row]], limit: int, now: int) -> list[list[Row]]:
    """Of what was read from each file (at most `limit` rows each, after `now` was
    taken), the rows the ledger may apply now, a prefix of each file's.

    Only rows stamped before `now`: a NAS sends a session's next record only once
    the previous is answered, so whatever a row stored before `now` follows was
    committed before it, so before any file was read, and is among the rows read.
    And where a file had more rows than `limit`, no row stamped after the last read
    from it: those may follow its unread ones. Rows stamped more than CLOCK_STEP
    after `now` go too (the wall clock was set back since they were stored).
    """
    horizon = now
    for rows in reads:
        if len(rows) >= limit:
            horizon = min(horizon, rows[-1][1] + 1)
    cut = []
    for rows in reads:
        n = 0
        while n < len(rows) and (rows[n][1] < horizon or rows[n][1] > now + CLOCK_STEP):
            n += 1
        cut.append(rows[:n])
    return cut


SEGMENT_BYTES = 32 << 20  # a segment is closed once the next group would pass this
SPARES = 2  # zero-filled or applied segments kept for reuse
_MAGIC = b"VPOPJNL1"
_HEADER = struct.Struct("<8sQ")  # magic, first id
_MARK = struct.Struct("<QQI")  # durable end (bytes), last durable id, CRC-32 of the two
_MARK_AT = _HEADER.size
_FRAMES_AT = 64
_FRAME = struct.Struct("<IQq")  # body length, id, stamp
_CRC = struct.Struct("<I")
_MAX_BODY = 1 << 20  # a length beyond this is not a frame (an accounting record is < 5 KiB)
_READ_CHUNK = 4 << 20
_ZEROS = bytes(1 << 20)
_SEGMENT = re.compile(r"seg-([0-9]{20})$")


def _segment_name(first_id: int) -> str:
    return f"seg-{first_id:020d}"


def _segments(path: str) -> list[tuple[int, str]]:
    """(first id, file) of every segment, oldest first."""
    found = []
    for name in os.listdir(path):
        if (m := _SEGMENT.match(name)):
            found.append((int(m.group(1)), os.path.join(path, name)))
    return sorted(found)


def _spares(path: str) -> list[str]:
    return [os.path.join(path, name) for name in os.listdir(path)
            if name.startswith("spare-") and not name.endswith(".tmp")]


def _mark_bytes(end: int, last: int) -> bytes:
    return _MARK.pack(end, last, zlib.crc32(struct.pack("<QQ", end, last)))


def _read_mark(fd: int, first_id: int) -> tuple[int, int]:
    """(end, last id) durable in a segment; nothing yet when its header is not (yet) that
    of this segment (a spare being taken over)."""
    for _ in range(3):  # the writer may be rewriting the mark this very moment
        raw = os.pread(fd, _FRAMES_AT, 0)
        if len(raw) < _MARK_AT + _MARK.size:
            return _FRAMES_AT, first_id - 1
        magic, first = _HEADER.unpack_from(raw)
        if magic != _MAGIC or first != first_id:
            return _FRAMES_AT, first_id - 1
        end, last, crc = _MARK.unpack_from(raw, _MARK_AT)
        if crc == zlib.crc32(raw[_MARK_AT:_MARK_AT + 16]):
            return end, last
    raise JournalError(f"segment {first_id}: its durable mark does not check")


def _frames(data: bytes, base: int, expected: int) -> Iterator[tuple[int, int, int, bytes]]:
    """(offset of the next frame, id, stamp, body) of the whole, consecutive frames in
    `data` (read from offset `base`), from id `expected` on."""
    at, size = 0, len(data)
    while at + _FRAME.size + _CRC.size <= size:
        length, entry, stamp = _FRAME.unpack_from(data, at)
        end = at + _FRAME.size + length
        if entry != expected or length > _MAX_BODY or end + _CRC.size > size:
            return
        (crc,) = _CRC.unpack_from(data, end)
        if crc != zlib.crc32(memoryview(data)[at:end]):
            return
        at = end + _CRC.size
        yield base + at, entry, stamp, bytes(data[end - length:end])
        expected += 1


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stream_name(path: str) -> str:
    """The journal's stream name, made on first use (whoever comes first: the worker, the
    ledger or the check before `vpop serve` binds)."""
    name_file = os.path.join(path, "stream")
    if not os.path.exists(name_file):
        made = f"{name_file}.{uuid.uuid4()}.tmp"
        with open(made, "w", encoding="ascii", opener=private_opener) as out:
            out.write(str(uuid.uuid4()))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(made, name_file)  # fails if another process was first: theirs holds
        except FileExistsError:
            pass
        finally:
            os.unlink(made)
        _fsync_directory(path)
    with open(name_file, encoding="ascii") as text:
        name = text.read().strip()
    if not name:
        raise JournalError(f"{path}: its stream file is empty")
    return name


def journal_head(path: str) -> tuple[str, int] | None:
    """(stream name, the last entry id durable), read only; None when there is none yet
    (for tools and tests that wait for the ledger)."""
    if not os.path.isfile(os.path.join(path, "stream")):
        return None
    reader = Journal(path)
    try:
        return reader.stream, reader.last_id()
    finally:
        reader.close()


def _refuse_earlier_file(path: str) -> None:
    if os.path.isfile(path):
        raise JournalError(
            f"{path}: a journal file of an earlier vpop (SQLite): let that vpop's "
            "ledger apply it (stop the server with SIGTERM), then remove the file")


def check_usable(path: str, *, free: bool) -> None:
    """JournalError unless `path` can be a journal, creating nothing (checked before
    `vpop serve` makes anything): a directory it may write, or one it may make.
    `free`: and no other process writes it (not for `vpop check-config`, which may run
    beside the server)."""
    _refuse_earlier_file(path)
    if os.path.isdir(path):
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise JournalError(f"{path}: cannot be the accounting journal: not writable")
        lock = os.path.join(path, "writer.lock")
        if free and os.path.exists(lock):
            fd = os.open(lock, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JournalError(f"{path}: written by another process") from None
            finally:
                os.close(fd)  # and the lock with it
        return
    if os.path.lexists(path):
        raise JournalError(f"{path}: cannot be the accounting journal: not a directory")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise JournalError(f"{path}: cannot be the accounting journal: {parent} is not a "
                           "directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise JournalError(f"{path}: cannot be the accounting journal: cannot create it in "
                           f"{parent}")


class Journal:
    """One journal directory, from one thread. `writer`: this process appends to it (one
    writer at a time); any instance reads, and recycles what the ledger has applied."""

    def __init__(self, path: str, *, writer: bool = False):
        self.path = path
        self._lock: int | None = None
        self._writing = False  # recovered: the lock file holds our pid until close()
        self._fd: int | None = None  # the writer's segment
        self._pos = self._last = 0
        self._readers: dict[int, int] = {}  # first id -> descriptor
        self._resume: dict[tuple[int, int], int] = {}  # (segment, id) -> offset of its frame
        self._preparing: threading.Thread | None = None
        try:
            _refuse_earlier_file(path)
            private_dirs(path)
            self.stream = _stream_name(path)
            if writer:
                self._lock = os.open(os.path.join(path, "writer.lock"), os.O_RDWR | os.O_CREAT,
                                     0o600)
                try:
                    fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise JournalError(f"{path}: written by another process") from None
                # The lock file holds its writer's pid until a clean close empties it.
                previous = os.pread(self._lock, 32, 0).decode("ascii", "replace").strip()
                os.ftruncate(self._lock, 0)
                os.pwrite(self._lock, f"{os.getpid()}\n".encode(), 0)
                self._recover(previous)
                self._writing = True
        except OSError as exc:
            self.close()
            raise JournalError(f"{path}: cannot be the accounting journal: "
                               f"{exc.strerror or exc}") from None
        except BaseException:
            self.close()
            raise

    # --- the writer ---

    def _recover(self, previous: str = "") -> None:
        """Continue the last segment after its last whole frame (or start the first).
        `previous`: the pid an earlier writer left in the lock file, when it did not
        stop cleanly; what was recovered is logged then."""
        segments = _segments(self.path)
        if not segments:
            if previous:
                log.warning("accounting journal %s: the previous writer (pid %s) did not "
                            "stop cleanly; no entries were written yet", self.path, previous)
            self._start_segment(1)
            return
        first, name = segments[-1]
        fd = os.open(name, os.O_RDWR)
        self._fd = fd
        os.fsync(fd)  # what an earlier writer left in the page cache, before we keep it
        data = _read_all(fd)
        end, last = _FRAMES_AT, first - 1
        if len(data) >= _FRAMES_AT and _HEADER.unpack_from(data) == (_MAGIC, first):
            for end, last, _, _ in _frames(memoryview(data)[_FRAMES_AT:], _FRAMES_AT, first):
                pass
        tail = len(data) - end
        torn = 0  # bytes of a write a crash cut short, up to its last one (for the log)
        if tail > 0 and data.count(0, end) != tail:  # not all zeros after the last frame
            torn = len(data.rstrip(b"\0")) - end
            _write_zeros(fd, end, tail)
        os.pwrite(fd, _HEADER.pack(_MAGIC, first) + _mark_bytes(end, last), 0)
        os.fsync(fd)
        self._pos, self._last = end, last
        if previous:
            log.warning("accounting journal %s: the previous writer (pid %s) did not stop "
                        "cleanly; recovered its last segment: %d entries kept (through id "
                        "%d), %s", self.path, previous, last - first + 1, last,
                        f"a torn write of {torn} bytes zeroed" if torn else "no torn write")
        elif torn:
            log.warning("accounting journal %s: a torn write after id %d zeroed", self.path,
                        last)

    def _start_segment(self, first_id: int) -> None:
        """The next segment: a spare renamed (its blocks are written already) or a new file;
        its name durable before anything in it is acknowledged."""
        name = os.path.join(self.path, _segment_name(first_id))
        for spare in _spares(self.path):
            try:
                os.rename(spare, name)
                break
            except FileNotFoundError:  # the ledger removed it meanwhile
                continue
        fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # The header reaches the disk with the first group's fdatasync; until then a
            # reader finds a header that is not this segment's and reads nothing.
            os.pwrite(fd, _HEADER.pack(_MAGIC, first_id) + _mark_bytes(_FRAMES_AT, first_id - 1)
                      .ljust(_FRAMES_AT - _HEADER.size, b"\0"), 0)
            _fsync_directory(self.path)
        except BaseException:
            os.close(fd)
            raise
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._pos, self._last = fd, _FRAMES_AT, first_id - 1

    def append(self, bodies: list[bytes]) -> int:
        """Store entries durably, in one write and one fdatasync; the id of the last (ids
        are consecutive)."""
        if self._fd is None:
            raise JournalError(f"{self.path}: opened for reading")
        stamp = time.time_ns()  # after every record in the batch was received
        last = self._last
        parts = []
        for body in bodies:
            last += 1
            head = _FRAME.pack(len(body), last, stamp)
            parts += (head, body, _CRC.pack(zlib.crc32(body, zlib.crc32(head))))
        blob = b"".join(parts)
        if self._pos + len(blob) > SEGMENT_BYTES and self._pos > _FRAMES_AT:
            self._start_segment(self._last + 1)
        os.pwrite(self._fd, blob, self._pos)
        os.fdatasync(self._fd)
        self._pos += len(blob)
        self._last = last
        # Only now that the group is on disk may readers see it.
        os.pwrite(self._fd, _mark_bytes(self._pos, last), _MARK_AT)
        if self._pos > SEGMENT_BYTES // 2:
            self._prepare_spare()
        return last

    def _prepare_spare(self) -> None:
        if self._preparing is not None and self._preparing.is_alive():
            return
        if _spares(self.path):
            return
        self._preparing = threading.Thread(target=_zero_filled_spare, args=(self.path,),
                                           name="journal-spare", daemon=True)
        self._preparing.start()

    # --- reading, for the ledger ---

    def _reader(self, first_id: int, name: str) -> int:
        fd = self._readers.get(first_id)
        if fd is None:
            fd = self._readers[first_id] = os.open(name, os.O_RDONLY)
        return fd

    def read_after(self, applied: int, limit: int) -> list[Row]:
        """(id, stamp, body) of the next `limit` durable entries after `applied`."""
        rows: list[Row] = []
        want = applied + 1
        segments = _segments(self.path)
        firsts = [first for first, _ in segments]
        at = max(0, bisect.bisect_right(firsts, want) - 1)
        while 0 <= at < len(segments) and len(rows) < limit:
            first, name = segments[at]
            fd = self._reader(first, name)
            end, last = _read_mark(fd, first)
            if last >= want:
                offset = self._resume.get((first, want), _FRAMES_AT)
                expected = want if offset != _FRAMES_AT else first
                chunk = min(_READ_CHUNK, max(1 << 16, limit << 10))  # records are < 5 KiB
                while offset < end and len(rows) < limit:
                    data = os.pread(fd, min(end - offset, chunk), offset)
                    moved = offset
                    for moved, entry, stamp, body in _frames(data, offset, expected):
                        expected = entry + 1
                        if entry >= want:
                            rows.append((entry, stamp, body))
                            if len(rows) >= limit:
                                break
                    if moved == offset:
                        whole = (_FRAME.size + _FRAME.unpack_from(data)[0] + _CRC.size
                                 if len(data) >= _FRAME.size else 0)
                        if len(data) < whole <= end - offset:
                            chunk = whole  # one entry larger than a chunk
                            continue
                        raise JournalError(f"{name}: no whole entry at byte {offset} of "
                                           f"{end} durable (damaged)")
                    offset = moved
                want = expected
                if len(self._resume) > 16:
                    self._resume.clear()
                self._resume[(first, want)] = offset
            if want <= last:
                break  # the limit
            at += 1
        return rows

    def last_id(self) -> int:
        """The id of the last entry durable (0 before the first)."""
        segments = _segments(self.path)
        if not segments:
            return 0
        first, name = segments[-1]
        return _read_mark(self._reader(first, name), first)[1]

    def backlog(self, applied: int) -> int:
        return max(0, self.last_id() - applied)

    def forget_through(self, applied: int) -> int:
        """Recycle the segments the ledger has applied (and committed that it has) as
        spares, or remove them; how many entries they held. The last segment stays: the
        writer continues it, and its ids continue from it."""
        segments = _segments(self.path)
        forgotten = 0
        spares = len(_spares(self.path))
        for (first, name), (following, _) in zip(segments, segments[1:]):
            if following - 1 > applied:
                break
            fd = self._readers.pop(first, None)
            if fd is not None:
                os.close(fd)
            if spares < SPARES:
                os.rename(name, os.path.join(self.path, f"spare-{uuid.uuid4()}"))
                spares += 1
            else:
                os.unlink(name)
            forgotten += following - first
        return forgotten

    def entries(self) -> Iterator[tuple[int, bytes]]:
        """(id, body) of every durable entry still in the journal, oldest first."""
        segments = _segments(self.path)
        if segments:
            applied = segments[0][0] - 1
            while rows := self.read_after(applied, 10_000):
                yield from ((entry, body) for entry, _, body in rows)
                applied = rows[-1][0]

    # --- entries the ledger could not apply ---

    def set_aside(self, entries: list[tuple[int, bytes, str]]) -> None:
        """Keep (id, body, reason) for an operator to look at, durably."""
        with open(os.path.join(self.path, "set-aside"), "ab", opener=private_opener) as out:
            for entry in entries:
                blob = pickle.dumps(entry, protocol=5)
                out.write(_CRC.pack(len(blob)) + blob)
            out.flush()
            os.fsync(out.fileno())

    def set_aside_entries(self) -> list[tuple[int, bytes, str]]:
        try:
            with open(os.path.join(self.path, "set-aside"), "rb") as source:
                data = source.read()
        except FileNotFoundError:
            return []
        found, at = [], 0
        while at + _CRC.size <= len(data):
            (length,) = _CRC.unpack_from(data, at)
            found.append(pickle.loads(data[at + _CRC.size:at + _CRC.size + length]))
            at += _CRC.size + length
        return found

    def close(self) -> None:
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            if self._writing:  # closed after recovery: a clean stop, nothing to report
                os.ftruncate(self._lock, 0)
                self._writing = False
            os.close(self._lock)
            self._lock = None


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    parts, at = [], 0
    while at < size:
        part = os.pread(fd, min(_READ_CHUNK, size - at), at)
        if not part:
            break
        parts.append(part)
        at += len(part)
    return b"".join(parts)


def _write_zeros(fd: int, at: int, size: int) -> None:
    while size > 0:
        n = os.pwrite(fd, _ZEROS[:min(size, len(_ZEROS))], at)
        at += n
        size -= n


def _zero_filled_spare(path: str) -> None:
    """A spare whose blocks are all written, made in the background (the writes give up
    the GIL), renamed into place only once complete."""
    made = os.path.join(path, f"spare-{uuid.uuid4()}.tmp")
    try:
        fd = os.open(made, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_zeros(fd, 0, SEGMENT_BYTES)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.rename(made, made[:-len(".tmp")])
    except OSError:
        try:
            os.unlink(made)
        except OSError:
            pass
