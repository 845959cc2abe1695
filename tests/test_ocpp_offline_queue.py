"""The OCPP station's offline queue: order across reopen, a power cut at every byte of an append
(with and without a garbage last byte), cuts during compaction and during a state write,
corruption in the middle refused by offset, the size bound, failed writes, and a model test of
random append/ack/reopen sequences against a list."""

import errno
import json
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ocpp_link import offline_queue
from ocpp_link.offline_queue import HEADER, OfflineQueue, QueueError, encode_record

PAYLOADS = [
    {"event_type": "Started", "seq_no": 0, "transaction_info": {"transaction_id": "tx-1"}},
    {"event_type": "Updated", "seq_no": 1, "meter_value": [{"sampled_value": [{"value": 1.5}]}]},
    {},
    {"note": "caf\u00e9 \u26a1", "n": None, "ok": True},  # non-ASCII text is stored escaped
    {"event_type": "Ended", "seq_no": 2, "big": "x" * 70},
    {"type": "StartupOfTheDevice", "timestamp": "2025-01-01T00:00:00Z"},
]
ACTIONS = ["TransactionEvent", "TransactionEvent", "MeterValues", "SecurityEventNotification",
           "TransactionEvent", "SecurityEventNotification"]


def drain(q):
    """Everything not acknowledged, in order, acknowledging as it goes (as the station would)."""
    out = []
    while True:
        h = q.head()
        if h is None:
            return out
        out.append(h)
        q.ack(h[0])


def record_ends(journal):
    """End offset of each record in a journal image, with its record number."""
    entries, end, torn = offline_queue.scan_journal(journal)
    assert not torn and end == len(journal)
    return [(r, o + s) for r, o, s in entries]


def test_order_and_numbers_survive_reopen_and_compaction(tmp_path):
    q = OfflineQueue(tmp_path / "q", fsync=False)
    nums = [q.append(a, p) for a, p in zip(ACTIONS, PAYLOADS)]
    assert nums == [1, 2, 3, 4, 5, 6] and len(q) == 6
    q.ack(1)
    q.ack(2)
    q.close()
    q = OfflineQueue(tmp_path / "q", fsync=False)
    assert len(q) == 4
    assert q.head() == (3, ACTIONS[2], PAYLOADS[2])
    assert drain(q) == [(i + 1, ACTIONS[i], PAYLOADS[i]) for i in range(2, 6)]
    assert q.compactions == 1 and q.journal_bytes == 0  # drained: the journal was emptied
    assert q.append("MeterValues", {"k": 1}) == 7  # numbering continues after compaction
    q.close()
    with OfflineQueue(tmp_path / "q", fsync=False) as q:
        assert q.head() == (7, "MeterValues", {"k": 1})
        assert q.append("MeterValues", {"k": 2}) == 8
        assert (q.appended, q.acked) == (1, 0)


def test_only_the_head_can_be_acknowledged(tmp_path):
    with OfflineQueue(tmp_path, fsync=False) as q:
        with pytest.raises(QueueError, match="empty"):
            q.ack(1)
        q.append("TransactionEvent", {})
        q.append("TransactionEvent", {})
        for wrong in (2, 0, 3, "1", None):
            with pytest.raises(QueueError, match="head"):
                q.ack(wrong)
        assert len(q) == 2 and q.acked == 0
        q.ack(1)
        assert q.head()[0] == 2


def _cut_and_reopen(base, journal, state, k, flip):
    """A copy of the queue as a power cut at journal byte k leaves it (last byte garbage if flip)."""
    d = tempfile.mkdtemp(dir=base)
    img = bytearray(journal[:k])
    if flip:
        img[-1] ^= 0xFF
    with open(os.path.join(d, "journal"), "wb") as f:
        f.write(img)
    if state is not None:
        with open(os.path.join(d, "state"), "wb") as f:
            f.write(state)
    return d, OfflineQueue(d, fsync=False)


@pytest.mark.parametrize("compacted", [False, True])
def test_power_cut_at_every_byte_of_an_append(tmp_path, compacted):
    src = tmp_path / "src"
    q = OfflineQueue(src, fsync=False)
    if compacted:
        # numbers no longer start at 1 and the state file holds an acknowledgement pointer
        for i in range(3):
            q.append("TransactionEvent", {"old": i})
        drain(q)
        assert q.journal_bytes == 0
    acked_upto = 3 if compacted else 0
    for a, p in zip(ACTIONS, PAYLOADS):
        q.append(a, p)
    q.close()
    journal = (src / "journal").read_bytes()
    state = (src / "state").read_bytes() if compacted else None
    ends = record_ends(journal)
    expected_all = [(acked_upto + i + 1, ACTIONS[i], PAYLOADS[i]) for i in range(len(PAYLOADS))]
    boundaries = {0} | {e for _r, e in ends}
    work = tmp_path / "cuts"
    work.mkdir()
    checked = 0
    for k in range(len(journal) + 1):
        for flip in (False, True):
            if flip and k == 0:
                continue
            d, q = _cut_and_reopen(work, journal, state, k, flip)
            # a record survives when its last byte was written intact before the cut
            limit = k - 1 if flip else k
            expected = [rec for rec, (_r, e) in zip(expected_all, ends) if e <= limit]
            assert q.torn_records_dropped == (0 if (k in boundaries and not flip) else 1), (k, flip)
            assert len(q) == len(expected), (k, flip)
            nxt = q.append("MeterValues", {"after": k})
            assert nxt == acked_upto + len(expected) + 1
            q.close()
            # the torn tail was cut for good: a second open finds a clean journal
            q = OfflineQueue(d, fsync=False)
            assert q.torn_records_dropped == 0
            assert drain(q) == expected + [(nxt, "MeterValues", {"after": k})], (k, flip)
            q.close()
            shutil.rmtree(d)
            checked += 1
    assert checked == 2 * len(journal) + 1  # every cut offset, with and without a garbage last byte


@pytest.mark.parametrize("victim", [1, 2])
def test_corruption_in_the_middle_is_refused_naming_the_offset(tmp_path, victim):
    q = OfflineQueue(tmp_path / "src", fsync=False)
    for a, p in zip(ACTIONS[:4], PAYLOADS[:4]):
        q.append(a, p)
    q.close()
    journal = (tmp_path / "src" / "journal").read_bytes()
    entries, _end, _torn = offline_queue.scan_journal(journal)
    _r, start, size = entries[victim]
    # one flipped bit at every byte of the record: magic, length, CRC and body
    for i in range(size):
        for bit in (0x01, 0x80):
            img = bytearray(journal)
            img[start + i] ^= bit
            d = tmp_path / ("c%d_%d" % (i, bit))
            d.mkdir()
            (d / "journal").write_bytes(img)
            with pytest.raises(QueueError, match=r"corrupt record at offset %d\b" % start):
                OfflineQueue(d, fsync=False)
            assert (d / "journal").read_bytes() == bytes(img)  # refused, not "repaired"


def test_a_bad_last_record_is_dropped_as_a_torn_append(tmp_path):
    q = OfflineQueue(tmp_path, fsync=False)
    for i in range(3):
        q.append("TransactionEvent", {"i": i})
    q.close()
    img = bytearray((tmp_path / "journal").read_bytes())
    img[-3] ^= 0x04  # inside the last record's body: indistinguishable from a torn write
    (tmp_path / "journal").write_bytes(img)
    q = OfflineQueue(tmp_path, fsync=False)
    assert q.torn_records_dropped == 1
    assert [h[2] for h in drain(q)] == [{"i": 0}, {"i": 1}]


def test_numbering_faults_and_inconsistent_state_are_refused(tmp_path):
    # a gap in record numbers with valid CRCs: records missing, not a power cut
    d = tmp_path / "gap"
    d.mkdir()
    (d / "journal").write_bytes(encode_record(1, "A", {}) + encode_record(3, "A", {}))
    with pytest.raises(QueueError, match="offset %d.*number 3 after 1" % len(encode_record(1, "A", {}))):
        OfflineQueue(d, fsync=False)
    # the state file lost after a compaction: the journal starts past the acknowledged position
    d = tmp_path / "nostate"
    q = OfflineQueue(d, fsync=False)
    for i in range(4):
        q.append("A", {"i": i})
    q.ack(1)
    q.ack(2)
    q._compact()
    q.close()
    os.unlink(d / "state")
    with pytest.raises(QueueError, match="records missing"):
        OfflineQueue(d, fsync=False)
    # a state file acknowledging beyond the journal
    d = tmp_path / "ahead"
    q = OfflineQueue(d, fsync=False)
    q.append("A", {})
    q.append("A", {})
    q.ack(1)
    q.close()
    q = OfflineQueue(tmp_path / "other", fsync=False)
    for i in range(5):
        q.append("A", {})
    for i in range(4):
        q.ack(i + 1)
    q.close()
    shutil.copy(tmp_path / "other" / "state", d / "state")
    with pytest.raises(QueueError, match="acknowledged up to record 4 but the journal ends at record 2"):
        OfflineQueue(d, fsync=False)


def test_a_corrupt_state_file_is_refused(tmp_path):
    q = OfflineQueue(tmp_path, fsync=False)
    q.append("A", {})
    q.put_state("tx_seq_no", 7)
    q.close()
    good = (tmp_path / "state").read_bytes()
    for i in range(len(good)):
        img = bytearray(good)
        img[i] ^= 0x20
        (tmp_path / "state").write_bytes(img)
        with pytest.raises(QueueError, match="state file .* is corrupt"):
            OfflineQueue(tmp_path, fsync=False)
    (tmp_path / "state").write_bytes(good)
    with OfflineQueue(tmp_path, fsync=False) as q:
        assert q.get_state("tx_seq_no") == 7


def _snapshotting_replace(monkeypatch, target, snapshots, fail_before=False):
    """os.replace that copies the queue directory as a power cut just before and just after
    the rename onto `target` would leave it."""
    real = os.replace

    def fake(src, dst):
        if os.path.basename(dst) == target:
            snapshots.append(("before", _copy_dir(os.path.dirname(dst))))
            if fail_before:
                raise OSError(errno.EIO, "simulated failure before the rename")
            real(src, dst)
            snapshots.append(("after", _copy_dir(os.path.dirname(dst))))
            return
        real(src, dst)

    monkeypatch.setattr(os, "replace", fake)


def _copy_dir(d):
    out = tempfile.mkdtemp(prefix="snap", dir=os.path.dirname(d))
    for name in os.listdir(d):
        if name != "lock":
            shutil.copy(os.path.join(d, name), out)
    return out


def test_power_cut_during_compaction(tmp_path, monkeypatch):
    q = OfflineQueue(tmp_path / "q", fsync=False, compact_bytes=100)
    for i in range(8):
        q.append("TransactionEvent", {"i": i, "pad": "p" * 20})
    snaps = []
    _snapshotting_replace(monkeypatch, "journal", snaps)
    recno = 0
    while q.compactions == 0:
        recno += 1
        q.ack(recno)  # until the acknowledged prefix passes 100 bytes and half the file
    monkeypatch.undo()
    assert 1 < recno < 8 and [k for k, _s in snaps] == ["before", "after"]
    expected = [(i + 1, "TransactionEvent", {"i": i, "pad": "p" * 20}) for i in range(recno, 8)]
    before = [s for kind, s in snaps if kind == "before"]
    assert any(os.path.exists(os.path.join(s, "journal.tmp")) for s in before)
    for kind, snap in snaps:
        for half_tmp in (False, True):
            d = _copy_dir(snap)
            tmp = os.path.join(d, "journal.tmp")
            if half_tmp and os.path.exists(tmp):  # the cut came while the temp file was being written
                with open(tmp, "r+b") as f:
                    f.truncate(os.path.getsize(tmp) // 2)
            r = OfflineQueue(d, fsync=False)
            assert not os.path.exists(tmp)
            assert r.torn_records_dropped == 0
            assert drain(r) == expected, kind
            r.close()
    assert drain(q) == expected


def test_compaction_that_fails_before_the_rename_keeps_the_old_journal(tmp_path, monkeypatch):
    q = OfflineQueue(tmp_path, fsync=False)
    q.append("A", {"x": 1})
    snaps = []
    _snapshotting_replace(monkeypatch, "journal", snaps, fail_before=True)
    q.ack(1)  # drained: compaction is attempted and fails; the ack itself stands
    monkeypatch.undo()
    assert q.compaction_failures == 1 and len(q) == 0
    assert not (tmp_path / "journal.tmp").exists()
    assert q.append("A", {"x": 2}) == 2
    q.close()
    with OfflineQueue(tmp_path, fsync=False) as q:
        assert drain(q) == [(2, "A", {"x": 2})]


def test_power_cut_during_put_state(tmp_path, monkeypatch):
    q = OfflineQueue(tmp_path / "q", fsync=False)
    q.update_state({"tx_seq_no": 3, "energy_wh": {"import": 1000.5, "export": 20.0}})
    q.append("TransactionEvent", {"seq_no": 3})
    snaps = []
    _snapshotting_replace(monkeypatch, "state", snaps)
    q.update_state({"tx_seq_no": 4, "energy_wh": {"import": 1010.0, "export": 20.0}})
    monkeypatch.undo()
    assert [k for k, _s in snaps] == ["before", "after"]
    old = {"tx_seq_no": 3, "energy_wh": {"import": 1000.5, "export": 20.0}}
    new = {"tx_seq_no": 4, "energy_wh": {"import": 1010.0, "export": 20.0}}
    for (kind, snap), want in zip(snaps, (old, new)):
        for tmp_content in (None, b"OQS1 0000", b"garbage \x00\xff"):
            d = _copy_dir(snap)
            if tmp_content is not None:
                with open(os.path.join(d, "state.tmp"), "wb") as f:
                    f.write(tmp_content)
            with OfflineQueue(d, fsync=False) as r:
                # both keys move together: the update is all or nothing
                assert {k: r.get_state(k) for k in want} == want, kind
                assert r.head() == (1, "TransactionEvent", {"seq_no": 3})
            assert not os.path.exists(os.path.join(d, "state.tmp"))


def test_failed_state_write_changes_nothing(tmp_path, monkeypatch):
    q = OfflineQueue(tmp_path, fsync=False)
    q.put_state("k", 1)
    q.append("A", {})
    _snapshotting_replace(monkeypatch, "state", [], fail_before=True)
    with pytest.raises(QueueError, match="state not written"):
        q.put_state("k", 2)
    with pytest.raises(QueueError, match="state not written"):
        q.ack(1)
    monkeypatch.undo()
    assert q.get_state("k") == 1 and len(q) == 1  # memory matches the disk
    q.ack(1)
    q.put_state("k", 3)
    q.close()
    with OfflineQueue(tmp_path, fsync=False) as q:
        assert q.get_state("k") == 3 and len(q) == 0


def test_state_store_values_and_bad_input(tmp_path):
    with OfflineQueue(tmp_path, fsync=False) as q:
        assert q.get_state("missing", "dflt") == "dflt"
        q.put_state("tx", {"id": "abc", "seq": [1, 2]})
        got = q.get_state("tx")
        got["id"] = "changed"  # a copy: the store is not aliased
        assert q.get_state("tx") == {"id": "abc", "seq": [1, 2]}
        for bad in (float("nan"), {1, 2}, object()):
            with pytest.raises(QueueError, match="not JSON"):
                q.put_state("x", bad)
        with pytest.raises(QueueError, match="key"):
            q.update_state({3: "v"})
        q.delete_state("tx")
        q.delete_state("never-there")
        assert q.get_state("tx") is None and q.get_state("x") is None


def test_bad_messages_are_refused_and_leave_no_trace(tmp_path):
    with OfflineQueue(tmp_path, fsync=False) as q:
        q.append("A", {})
        size = q.journal_bytes
        for action, payload in (("", {}), (None, {}), (5, {}), ("A", []), ("A", "x"),
                                ("A", {"v": float("inf")}), ("A", {"v": {1}}), ("A", {"v": object()})):
            with pytest.raises(QueueError):
                q.append(action, payload)
        assert len(q) == 1 and q.journal_bytes == size and q.appended == 1
        assert q.append("A", {"ok": 1}) == 2


def test_max_bytes_bounds_the_journal(tmp_path):
    rec = len(encode_record(1, "MeterValues", {"i": 0}))
    cap = 5 * rec + rec // 2
    q = OfflineQueue(tmp_path, fsync=False, max_bytes=cap, compact_bytes=1 << 30)
    for i in range(5):
        q.append("MeterValues", {"i": i})
    with pytest.raises(QueueError, match="^full$"):
        q.append("MeterValues", {"i": 5})
    assert len(q) == 5 and q.journal_bytes <= cap
    q.ack(1)  # the acknowledged prefix is compacted away when the next append needs the room
    assert q.append("MeterValues", {"i": 5}) == 6
    assert q.journal_bytes <= cap and q.compactions == 1
    with pytest.raises(QueueError, match="larger than"):
        q.append("MeterValues", {"pad": "z" * cap})
    q.close()
    with OfflineQueue(tmp_path, fsync=False, max_bytes=cap) as q:
        assert [h[2]["i"] for h in drain(q)] == [1, 2, 3, 4, 5]


def test_a_failed_write_is_cut_back_so_the_journal_stays_clean(tmp_path, monkeypatch):
    q = OfflineQueue(tmp_path, fsync=False)
    q.append("A", {"i": 0})
    size = q.journal_bytes
    real = os.write

    def half_then_enospc(fd, data):
        real(fd, bytes(data[:len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(QueueError, match="append failed"):
        q.append("A", {"i": 1})
    monkeypatch.undo()
    assert os.path.getsize(tmp_path / "journal") == size == q.journal_bytes
    assert q.append("A", {"i": 2}) == 2
    q.close()
    with OfflineQueue(tmp_path, fsync=False) as q:
        assert q.torn_records_dropped == 0
        assert drain(q) == [(1, "A", {"i": 0}), (2, "A", {"i": 2})]


def test_with_fsync_appends_acks_and_state_are_synced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    q = OfflineQueue(tmp_path / "q")
    synced.clear()
    q.append("TransactionEvent", {"seq_no": 0})
    assert len(synced) >= 1  # the journal, before append returned
    synced.clear()
    q.append("TransactionEvent", {"seq_no": 1})
    q.ack(1)
    assert len(synced) >= 3  # append; state temp file and its directory
    synced.clear()
    q.put_state("seq", 2)
    assert len(synced) == 2
    q.close()
    with OfflineQueue(tmp_path / "q") as q:
        assert q.head() == (2, "TransactionEvent", {"seq_no": 1}) and q.get_state("seq") == 2


def test_a_failed_fsync_stops_the_queue_until_reopened(tmp_path, monkeypatch):
    q = OfflineQueue(tmp_path)
    q.append("A", {})

    def eio(fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(QueueError, match="not durable"):
        q.append("A", {"lost?": True})
    monkeypatch.undo()
    for op in (lambda: q.append("A", {}), q.head, lambda: q.ack(1), lambda: q.put_state("k", 1)):
        with pytest.raises(QueueError, match="reopen"):
            op()
    q.close()
    with OfflineQueue(tmp_path) as q:
        assert q.head() == (1, "A", {})  # what was durable before is there


def test_one_process_at_a_time(tmp_path):
    q = OfflineQueue(tmp_path, fsync=False)
    with pytest.raises(QueueError, match="open elsewhere"):
        OfflineQueue(tmp_path, fsync=False)
    q.close()
    with pytest.raises(QueueError, match="closed"):
        q.append("A", {})
    OfflineQueue(tmp_path, fsync=False).close()


def test_scan_of_garbage_never_invents_records():
    assert offline_queue.scan_journal(b"") == ([], 0, False)
    assert offline_queue.scan_journal(b"\x00" * 100) == ([], 0, True)
    rec = encode_record(1, "A", {"x": 1})
    assert offline_queue.scan_journal(rec + b"\x00" * 37)[1:] == (len(rec), True)
    assert offline_queue.scan_journal(rec[:HEADER.size] + b"\x00" * 10) == ([], 0, True)


# --- model test ------------------------------------------------------------------------------

OPS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.sampled_from(["TransactionEvent", "MeterValues"]),
              st.dictionaries(st.sampled_from(["a", "b", "seq_no"]),
                              st.one_of(st.integers(-5, 10 ** 6), st.text(max_size=30), st.booleans()),
                              max_size=3)),
    st.tuples(st.just("ack")),
    st.tuples(st.just("badack"), st.integers(-2, 3)),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("put"), st.sampled_from(["seq", "energy"]), st.integers(0, 10 ** 9)),
), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_model_random_append_ack_reopen(ops):
    max_bytes, compact = 1500, 150
    with tempfile.TemporaryDirectory() as d:
        q = OfflineQueue(d, fsync=False, max_bytes=max_bytes, compact_bytes=compact)
        model, state, nxt = [], {}, 1
        try:
            for op in ops:
                if op[0] == "append":
                    _k, action, payload = op
                    try:
                        r = q.append(action, payload)
                    except QueueError as e:
                        assert str(e) == "full"
                        need = len(encode_record(nxt, action, payload))
                        assert q.journal_bytes + need > max_bytes
                        assert q.journal_bytes == sum(len(encode_record(*m)) for m in model)
                    else:
                        assert r == nxt
                        model.append((r, action, payload))
                        nxt += 1
                elif op[0] == "ack":
                    if model:
                        q.ack(model.pop(0)[0])
                    else:
                        with pytest.raises(QueueError):
                            q.ack(nxt)
                elif op[0] == "badack":
                    wrong = (model[0][0] if model else nxt) + op[1] if op[1] else -1
                    with pytest.raises(QueueError):
                        q.ack(wrong)
                elif op[0] == "reopen":
                    q.close()
                    q = OfflineQueue(d, fsync=False, max_bytes=max_bytes, compact_bytes=compact)
                    assert q.torn_records_dropped == 0
                else:
                    q.put_state(op[1], op[2])
                    state[op[1]] = op[2]
                assert len(q) == len(model)
                assert q.head() == (tuple(model[0]) if model else None)
                assert q.journal_bytes <= max_bytes
                assert {k: q.get_state(k) for k in state} == state
            q.close()
            q = OfflineQueue(d, fsync=False, max_bytes=max_bytes, compact_bytes=compact)
            assert drain(q) == [tuple(m) for m in model]
            assert q.append("MeterValues", {}) == nxt
        finally:
            q.close()


def test_journal_records_are_ascii_json_behind_the_magic(tmp_path):
    with OfflineQueue(tmp_path, fsync=False) as q:
        q.append("SecurityEventNotification", {"tech_info": "\u00fc\u20ac"})
    raw = (tmp_path / "journal").read_bytes()
    body = raw[HEADER.size:]
    assert raw[:4] == offline_queue.MAGIC and max(body) < 0x80
    assert json.loads(body) == [1, "SecurityEventNotification", {"tech_info": "\u00fc\u20ac"}]
