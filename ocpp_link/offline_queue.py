"""The charging station's power-loss-safe queue of messages it must deliver in order.

OCPP 2.1 Part 2, block E (Transactions): while the charging platform (CSMS) is unreachable, the
station keeps its transaction-related messages (TransactionEventRequest, and here also
MeterValuesRequest and SecurityEventNotificationRequest) and delivers them in the order they were
generated when the connection returns; a TransactionEventRequest is retried per
OCPPCommCtrlr.MessageAttempts / MessageAttemptInterval. This module is the storage under that
behaviour; the sending loop belongs to the station.

Guarantee
---------
* Durable append: when ``append`` returns, the record is in the journal and the journal is
  fsync'ed. A power cut at any byte of any later write leaves every record whose ``append``
  returned, in append order; a record whose ``append`` had not returned is either there whole
  or not there at all (a torn tail is dropped on open and counted in ``torn_records_dropped``).
  Nothing is invented: every record is checked by magic, length and CRC-32 and by its record
  number continuing the one before.
* Order: ``head`` is always the oldest record not acknowledged; ``ack`` accepts only the head.
* At least once, not exactly once: the caller sends the head, waits for the platform's answer,
  then calls ``ack``. A power cut between the platform's answer and the durable ``ack`` sends
  the same message again after restart. That is the protocol's model too: a CSMS recognises a
  repeated TransactionEventRequest by its transactionId and seqNo and ignores the duplicate, so
  the station must reuse the same payload (same seqNo) when re-sending, which this queue does.
* Corruption that a power cut cannot cause is refused, never repaired silently: a bad record
  followed by a valid one (a bit flip in the middle of the journal), a gap or a step back in
  record numbers, an acknowledgement pointer beyond the journal, or a state file whose CRC does
  not match raise ``QueueError`` naming the file and the byte offset. A bad record at the very
  end of the journal cannot be told apart from a torn append and is dropped as one.
* ``fsync=False`` (tests) keeps the format and the order of operations but gives no durability.

Files in the queue's directory
------------------------------
``journal``      append-only records: magic(4) | length(4, big-endian) | crc32(4) | body, where the
                 body is ASCII JSON ``[recno, action, payload]`` (ensure_ascii, so the magic's
                 non-ASCII first byte never occurs inside a body) and the CRC covers the length
                 field and the body.
``state``        ``OQS1 <crc32 hex>\\n`` + JSON ``{"acked": n, "state": {...}}``: the number of
                 the last acknowledged record and the small key -> JSON store. Replaced
                 atomically (temp file, fsync, rename, fsync of the directory).
``*.tmp``        a replacement being written; never authoritative, deleted on open.
``lock``         an exclusive flock: one process at a time.

The journal is compacted (its unacknowledged records copied into a temp file that is renamed
over it) when everything is acknowledged, when the acknowledged prefix reaches
``compact_bytes`` and is at least half of the file, and before refusing an append as full.
A cut during compaction leaves the old journal or the new one; both hold the same unacknowledged
records, because the acknowledgement pointer is durable before compaction starts.

The queue is not thread-safe and its calls block for the fsyncs (milliseconds on flash); an
asyncio caller runs them in an executor or accepts the pause at OCPP message rates.
"""

import errno
import fcntl
import json
import os
import struct
import zlib

MAGIC = b"\xc5OQ1"
HEADER = struct.Struct(">4sII")  # magic, body length, crc32(length field + body)
STATE_MAGIC = b"OQS1 "
MAX_RECORD = 1 << 20  # one OCPP message; far above any real TransactionEventRequest


class QueueError(Exception):
    """The queue refuses an operation (full, bad input, out-of-order ack) or found its files
    corrupt; the message says which and where."""


class _RenamedNotSynced(Exception):
    """A replacement file was renamed into place but the directory fsync failed."""


def encode_record(recno, action, payload):
    """One journal record as bytes (also used by the tests to build journals)."""
    body = json.dumps([recno, action, payload], ensure_ascii=True, separators=(",", ":"),
                      allow_nan=False).encode("ascii")
    length = struct.pack(">I", len(body))
    return HEADER.pack(MAGIC, len(body), zlib.crc32(body, zlib.crc32(length))) + body


def _parse_at(buf, off, max_body):
    """(recno, action, payload, end) of a valid record at buf[off:], else None."""
    if len(buf) - off < HEADER.size:
        return None
    magic, n, crc = HEADER.unpack_from(buf, off)
    if magic != MAGIC or n > max_body:
        return None
    end = off + HEADER.size + n
    if end > len(buf):
        return None
    body = bytes(buf[off + HEADER.size:end])
    if zlib.crc32(body, zlib.crc32(bytes(buf[off + 4:off + 8]))) != crc:
        return None
    try:
        recno, action, payload = json.loads(body.decode("ascii"))
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    if type(recno) is not int or recno < 1 or not isinstance(action, str) or not isinstance(payload, dict):
        return None
    return recno, action, payload, end


def _valid_record_after(buf, start, max_body):
    """Offset of the first valid record starting after `start`, else None."""
    pos = buf.find(MAGIC, start)
    while pos != -1:
        if _parse_at(buf, pos, max_body) is not None:
            return pos
        pos = buf.find(MAGIC, pos + 1)
    return None


def scan_journal(buf, max_body=MAX_RECORD, name="journal"):
    """Check a journal image: ([(recno, offset, size), ...], good_end, torn).

    `torn` is True when the image ends in a record that is incomplete or fails its checks and no
    valid record follows it (what a power cut during an append leaves); good_end is then where
    the valid records end. Raises QueueError for corruption a power cut cannot cause."""
    entries = []
    off = 0
    prev = None
    while off < len(buf):
        r = _parse_at(buf, off, max_body)
        if r is None:
            after = _valid_record_after(buf, off + 1, max_body)
            if after is not None:
                raise QueueError("%s: corrupt record at offset %d with a valid record after it at offset %d; "
                                 "refusing to drop records in the middle of the queue" % (name, off, after))
            return entries, off, True
        recno, _action, _payload, end = r
        if prev is not None and recno != prev + 1:
            raise QueueError("%s: record at offset %d has number %d after %d (records missing or out of order)"
                             % (name, off, recno, prev))
        entries.append((recno, off, end - off))
        prev = recno
        off = end
    return entries, off, False


class OfflineQueue:
    """In-order, power-loss-safe message queue with a small durable key -> JSON store beside it.

    path: the queue's directory (created if absent; any name works, also one ending in a file
    suffix). max_bytes bounds the journal file; compact_bytes is the acknowledged prefix that
    triggers a compaction. See the module docstring for the guarantee."""

    def __init__(self, path, fsync=True, max_bytes=64 * 1024 * 1024, compact_bytes=1024 * 1024):
        self.dir = os.fspath(path)
        self.fsync = bool(fsync)
        self.max_bytes = int(max_bytes)
        self.compact_bytes = int(compact_bytes)
        self.max_record = min(MAX_RECORD, self.max_bytes)
        self.torn_records_dropped = 0
        self.appended = 0
        self.acked = 0
        self.compactions = 0
        self.compaction_failures = 0
        self._broken = None
        self._wfd = None
        self._rfd = None
        self._lockfd = None
        self._journal = os.path.join(self.dir, "journal")
        self._statefile = os.path.join(self.dir, "state")
        try:
            os.makedirs(self.dir, exist_ok=True)
        except OSError as e:
            raise QueueError("cannot create queue directory %s: %s" % (self.dir, e)) from e
        self._lock()
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # --- opening -------------------------------------------------------------------------------

    def _lock(self):
        self._lockfd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._lockfd)
            self._lockfd = None
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise QueueError("queue %s is open elsewhere" % self.dir) from e
            raise

    def _open(self):
        for tmp in ("journal.tmp", "state.tmp"):
            try:
                os.unlink(os.path.join(self.dir, tmp))  # an unfinished replacement: the old file stands
            except FileNotFoundError:
                pass
        self._ack_ptr, self._state = self._load_state()
        try:
            with open(self._journal, "rb") as f:
                buf = f.read()
        except FileNotFoundError:
            buf = b""
        entries, good_end, torn = scan_journal(buf, self.max_record, self._journal)
        if torn:
            # the tail of an append that never returned: cut it so later appends follow valid records
            self.torn_records_dropped += 1
            fd = os.open(self._journal, os.O_WRONLY)
            try:
                os.ftruncate(fd, good_end)
                self._sync(fd)
            finally:
                os.close(fd)
        if entries:
            first, last = entries[0][0], entries[-1][0]
            if first > self._ack_ptr + 1:
                raise QueueError("%s: journal starts at record %d but only records up to %d are acknowledged "
                                 "(records missing)" % (self._journal, first, self._ack_ptr))
            if last < self._ack_ptr:
                raise QueueError("%s: acknowledged up to record %d but the journal ends at record %d"
                                 % (self._statefile, self._ack_ptr, last))
            self._next = last + 1
        else:
            self._next = self._ack_ptr + 1
        self._pending = [(r, o, s) for r, o, s in entries if r > self._ack_ptr]
        self._pi = 0  # index of the head in _pending (consumed entries are dropped at compaction)
        self._size = good_end
        self._open_fds(created=not os.path.exists(self._journal))
        self._maybe_compact()

    def _open_fds(self, created=False):
        self._wfd = os.open(self._journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._rfd = os.open(self._journal, os.O_RDONLY)
        if created:
            self._sync_dir()

    def _load_state(self):
        try:
            with open(self._statefile, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return 0, {}
        try:
            if not raw.startswith(STATE_MAGIC) or raw[13:14] != b"\n":
                raise ValueError("bad header")
            body = raw[14:]
            if raw[5:13] != b"%08x" % zlib.crc32(body):
                raise ValueError("CRC mismatch")
            doc = json.loads(body.decode("ascii"))
            acked, state = doc["acked"], doc["state"]
            if type(acked) is not int or acked < 0 or not isinstance(state, dict):
                raise ValueError("bad fields")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise QueueError("state file %s is corrupt (%s); refusing to guess the acknowledged position"
                             % (self._statefile, e)) from e
        return acked, state

    # --- low-level durability ------------------------------------------------------------------

    def _sync(self, fd):
        if self.fsync:
            os.fsync(fd)

    def _sync_dir(self):
        if self.fsync:
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _replace(self, name, data):
        """Atomically make dir/name hold `data`: temp file, fsync, rename, fsync of the directory.

        OSError: nothing changed (the temp file is removed). _RenamedNotSynced: the new file is in
        place but its rename may not survive a power cut."""
        tmp = os.path.join(self.dir, name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                self._sync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, os.path.join(self.dir, name))
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:
            self._sync_dir()
        except OSError as e:
            raise _RenamedNotSynced(str(e)) from e

    def _check(self):
        if self._broken is not None:
            raise QueueError("queue %s stopped after a failed write (%s); reopen it" % (self.dir, self._broken))
        if self._wfd is None:
            raise QueueError("queue %s is closed" % self.dir)

    # --- the queue -----------------------------------------------------------------------------

    def append(self, action, payload):
        """Append one message; durable when this returns. Returns its record number (1, 2, ...,
        increasing for the life of the queue). QueueError("full") when the journal would pass
        max_bytes even after compaction; QueueError for a bad action or payload."""
        self._check()
        if not isinstance(action, str) or not action:
            raise QueueError("action must be a non-empty string, not %r" % (action,))
        if not isinstance(payload, dict):
            raise QueueError("payload must be a dict, not %s" % type(payload).__name__)
        recno = self._next
        try:
            rec = encode_record(recno, action, payload)
        except (TypeError, ValueError) as e:
            raise QueueError("payload of %s is not JSON: %s" % (action, e)) from e
        if len(rec) - HEADER.size > self.max_record:
            raise QueueError("record of %d bytes is larger than the %d-byte limit" % (len(rec), self.max_record))
        if self._size + len(rec) > self.max_bytes and self._prefix() > 0:
            self._try_compact()
        if self._size + len(rec) > self.max_bytes:
            raise QueueError("full")
        start = self._size
        try:
            view = memoryview(rec)
            while view:
                view = view[os.write(self._wfd, view):]
        except OSError as e:
            # cut the partial record so the next append does not follow a torn one
            try:
                os.ftruncate(self._wfd, start)
            except OSError as e2:
                self._broken = "append failed (%s) and the partial record could not be cut (%s)" % (e, e2)
            raise QueueError("append failed: %s" % e) from e
        try:
            self._sync(self._wfd)
        except OSError as e:
            # after a failed fsync the kernel may have dropped the dirty pages: the file's content
            # is unknown, so only a reopen (which rescans) may continue
            self._broken = "fsync failed: %s" % e
            raise QueueError("append not durable: %s" % e) from e
        self._pending.append((recno, start, len(rec)))
        self._size += len(rec)
        self._next = recno + 1
        self.appended += 1
        return recno

    def head(self):
        """(recno, action, payload) of the oldest message not yet acknowledged, or None."""
        self._check()
        if self._pi >= len(self._pending):
            return None
        return self._read(self._pending[self._pi])

    def _read(self, entry):
        recno, off, size = entry
        buf = os.pread(self._rfd, size, off)
        r = _parse_at(buf, 0, self.max_record)
        if r is None or r[0] != recno:
            raise QueueError("%s: record %d at offset %d no longer reads back valid" % (self._journal, recno, off))
        return r[0], r[1], r[2]

    def pending(self):
        """Every message not yet acknowledged, oldest first: [(recno, action, payload)]."""
        self._check()
        return [self._read(e) for e in self._pending[self._pi:]]

    def ack(self, recno):
        """The head was delivered (the platform answered): durable when this returns. Acking
        anything but the head raises QueueError."""
        self._check()
        if self._pi >= len(self._pending):
            raise QueueError("ack %r: the queue is empty" % (recno,))
        head = self._pending[self._pi][0]
        if recno != head:
            raise QueueError("ack %r: only the head (record %d) can be acknowledged" % (recno, head))
        self._write_state(recno, self._state)
        self._ack_ptr = recno
        self._pi += 1
        self.acked += 1
        self._maybe_compact()

    def __len__(self):
        return len(self._pending) - self._pi

    @property
    def journal_bytes(self):
        """Current size of the journal file (acknowledged prefix included until compaction)."""
        return self._size

    # --- compaction ----------------------------------------------------------------------------

    def _prefix(self):
        """Bytes of the journal before the head (all acknowledged)."""
        if self._pi < len(self._pending):
            return self._pending[self._pi][1]
        return self._size

    def _maybe_compact(self):
        prefix = self._prefix()
        if prefix and (prefix == self._size or (prefix >= self.compact_bytes and 2 * prefix >= self._size)):
            self._try_compact()

    def _try_compact(self):
        try:
            self._compact()
        except OSError:
            # the old journal still stands and is valid; compaction is only housekeeping
            self.compaction_failures += 1

    def _compact(self):
        prefix = self._prefix()
        rest = b""
        if prefix < self._size:
            rest = os.pread(self._rfd, self._size - prefix, prefix)
            if len(rest) != self._size - prefix:
                raise OSError(errno.EIO, "short read of %s during compaction" % self._journal)
        try:
            self._replace("journal", rest)  # a cut before the rename leaves the old journal, after it the new
        except _RenamedNotSynced as e:
            self._broken = "compaction: directory fsync failed after the rename (%s)" % e
            raise QueueError(self._broken) from None
        try:
            os.close(self._wfd)
            os.close(self._rfd)
            self._wfd = self._rfd = None
            self._open_fds()
        except OSError as e:
            self._broken = "reopening the compacted journal failed: %s" % e
            raise QueueError(self._broken) from e
        self._pending = [(r, o - prefix, s) for r, o, s in self._pending[self._pi:]]
        self._pi = 0
        self._size -= prefix
        self.compactions += 1

    # --- the state store -----------------------------------------------------------------------

    def _write_state(self, acked, state):
        try:
            body = json.dumps({"acked": acked, "state": state}, ensure_ascii=True, sort_keys=True,
                              separators=(",", ":"), allow_nan=False).encode("ascii")
        except (TypeError, ValueError) as e:
            raise QueueError("state is not JSON: %s" % e) from e
        data = STATE_MAGIC + b"%08x\n" % zlib.crc32(body) + body
        try:
            self._replace("state", data)
        except OSError as e:
            raise QueueError("state not written: %s" % e) from e
        except _RenamedNotSynced as e:
            # the new state is in place but may revert after a power cut: stop until reopened
            self._broken = "state: directory fsync failed after the rename (%s)" % e
            raise QueueError(self._broken) from None

    @staticmethod
    def _json_copy(value):
        try:
            return json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise QueueError("state value is not JSON: %s" % e) from e

    def update_state(self, mapping):
        """Set several keys at once, atomically and durably (all or none survive a power cut)."""
        self._check()
        new = dict(self._state)
        for key, value in mapping.items():
            if not isinstance(key, str):
                raise QueueError("state key must be a string, not %r" % (key,))
            new[key] = self._json_copy(value)
        self._write_state(self._ack_ptr, new)
        self._state = new

    def put_state(self, key, value):
        """Store one JSON value under `key`; durable when this returns."""
        self.update_state({key: value})

    def delete_state(self, key):
        """Remove `key` (no error when absent); durable when this returns."""
        self._check()
        if key in self._state:
            new = dict(self._state)
            del new[key]
            self._write_state(self._ack_ptr, new)
            self._state = new

    def get_state(self, key, default=None):
        """A copy of the value stored under `key`, or `default`."""
        if key not in self._state:
            return default
        return json.loads(json.dumps(self._state[key]))

    # --- closing -------------------------------------------------------------------------------

    def close(self):
        for name in ("_wfd", "_rfd", "_lockfd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                try:
                    os.close(fd)  # closing the lock fd releases the flock
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
