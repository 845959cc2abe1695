"""E2E protection (controller/bus/e2e.py) under MicroPython and CPython.

Known answers: the CRC-8 SAE J1850 check value (0x4B for "123456789") and the
SAE J1850 examples of the AUTOSAR CRC library specification (Crc_CalculateCRC8);
the table-driven CRC is also compared with a bitwise reference written here.
Then sealing and checking real site messages from controller/bus/candb.py: every single
bit flip is caught, repeated frames refused, lost frames tolerated up to max_delta,
wrong sequences refused with resynchronisation, and the counter wraps 15 -> 0.
Plain test_* functions and assert only: run by pytest and by tests/firmware/mp_run.py.
"""
from controller.bus import e2e
from controller.bus.candb import BY_NAME
from controller.bus.e2e import (
    BAD_CRC,
    BAD_LENGTH,
    INITIAL,
    OK,
    OK_LOST,
    REPEATED,
    WRONG_SEQUENCE,
    E2EReceiver,
    E2ESender,
    crc8_j1850,
    crc8_sae_j1850,
)

CMD = BY_NAME["GW_InverterCmd"]  # counter in byte 6 bits 0..3, data id 0x1100
GRID = BY_NAME["MTR_Grid"]  # counter in byte 5 bits 4..7, shares the byte with PhaseAngle


def crc_bitwise(data, crc=0xFF):
    """Reference: CRC-8, polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x1D), MSB first, bit by bit."""
    for b in data:
        crc ^= b
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ 0x1D) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc ^ 0xFF


def lcg_bytes(seed, n):
    out = bytearray(n)
    for i in range(n):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (seed >> 16) & 0xFF
    return out


def cmd_values(p=0, counter=0):
    return {"InvModeReq": 1, "ClearFaults": 0, "PSetpoint": p, "QSetpoint": -50, "AliveCounter": counter, "Crc": 0}


def sealed_frames(sender, n):
    """n GW_InverterCmd frames (PSetpoint 0, 10, 20, ...) sealed by sender."""
    frames = []
    for i in range(n):
        frames.append(bytes(sender.seal(bytearray(CMD.encode(cmd_values(i * 10))))))
    return frames


def grid_values():
    return {"GridVoltage": 230.0, "GridFrequency": 50.0, "PhaseAngle": -12.3, "AliveCounter": 0,
            "Rocof": -0.1, "Crc": 0}


def test_crc_check_value():
    assert crc8_sae_j1850(b"123456789") == 0x4B
    assert crc_bitwise(b"123456789") == 0x4B


def test_crc_autosar_examples():
    # AUTOSAR SWS CRC Library, CRC8 (SAE J1850) example results
    cases = (
        ("00000000", 0x59), ("F20183", 0x37), ("0FAA0055", 0x79), ("00FF5511", 0xB8),
        ("332255AABBCCDDEEFF", 0xCB), ("926B55", 0x8C), ("FFFFFFFF", 0x74),
    )
    for hx, crc in cases:
        assert crc8_sae_j1850(bytes.fromhex(hx)) == crc, hx


def test_crc_table_matches_bitwise_reference():
    for seed in range(200):
        data = lcg_bytes(seed, 1 + seed % 12)
        assert crc8_sae_j1850(data) == crc_bitwise(data)
        assert crc8_sae_j1850(data, 1) == crc_bitwise(data[:1])


def test_e2e_crc_covers_data_id_low_high_then_bytes_0_to_6():
    for seed in range(50):
        data = lcg_bytes(seed, 8)
        did = (seed * 977 + 1) & 0xFFFF
        ref = crc_bitwise(bytes([did & 0xFF, did >> 8]) + bytes(data[:7]))
        assert crc8_j1850(did, data) == ref
        assert crc8_j1850(did, data, 7) == ref


def test_seal_then_check():
    tx = E2ESender(CMD)
    rx = E2EReceiver(CMD)
    frames = sealed_frames(tx, 3)
    for i, f in enumerate(frames):
        d = CMD.decode(f)
        assert d["AliveCounter"] == i and d["PSetpoint"] == i * 10 and d["QSetpoint"] == -50
        assert d["Crc"] == crc_bitwise(bytes([0x00, 0x11]) + f[:7])
    assert rx.check(frames[0]) == INITIAL
    assert rx.check(frames[1]) == OK
    assert rx.check(frames[2]) == OK
    assert rx.accepted_count == 3 and rx.refused() == 0 and rx.status == OK


def test_seal_keeps_the_other_bits_of_the_counter_byte():
    tx = E2ESender(GRID, start=9)
    plain = GRID.encode(grid_values())
    f = bytes(tx.seal(bytearray(plain)))
    assert f[5] & 0x0F == plain[5] & 0x0F  # PhaseAngle's high bits untouched
    d = GRID.decode(f)
    assert d["AliveCounter"] == 9 and d["PhaseAngle"] == GRID.decode(plain)["PhaseAngle"]
    assert E2EReceiver(GRID).check(f) == INITIAL


def test_every_single_bit_flip_is_bad_crc():
    tx = E2ESender(CMD)
    good = sealed_frames(tx, 2)
    for byte in range(8):
        for bit in range(8):
            rx = E2EReceiver(CMD)
            assert rx.check(good[0]) == INITIAL
            bad = bytearray(good[1])
            bad[byte] ^= 1 << bit
            assert rx.check(bad) == BAD_CRC, (byte, bit)
            assert rx.bad_crc == 1
            assert rx.check(good[1]) == OK  # the refused frame did not disturb the sequence


def test_other_data_id_is_refused():
    """The same payload sealed with another message's data id (0x1101) does not pass."""
    rx_cmd = E2EReceiver(CMD)
    ok = bytearray(8)
    E2ESender(CMD).seal(ok)
    assert crc8_j1850(0x1101, ok) != crc8_j1850(0x1100, ok)
    lim = bytearray(ok)
    lim[7] = crc8_j1850(0x1101, ok)
    assert rx_cmd.check(lim) == BAD_CRC
    assert rx_cmd.check(ok) == INITIAL


def test_repeated_frame_refused():
    tx = E2ESender(CMD)
    rx = E2EReceiver(CMD)
    f = sealed_frames(tx, 3)
    assert rx.check(f[0]) == INITIAL
    assert rx.check(f[1]) == OK
    assert rx.check(f[1]) == REPEATED
    assert rx.check(f[1]) == REPEATED
    assert rx.repeated == 2 and rx.refused() == 2
    assert rx.check(f[2]) == OK


def test_lost_frames_accepted_up_to_max_delta_then_wrong_sequence_and_resync():
    tx = E2ESender(CMD)
    rx = E2EReceiver(CMD, max_delta=3)
    f = sealed_frames(tx, 16)
    assert rx.check(f[0]) == INITIAL
    assert rx.check(f[2]) == OK_LOST  # one lost
    assert rx.lost == 1
    assert rx.check(f[5]) == OK_LOST  # two lost: delta 3 = max_delta
    assert rx.lost == 3
    assert rx.check(f[9]) == WRONG_SEQUENCE  # delta 4 > max_delta: refused
    assert rx.wrong_sequence == 1 and rx.status == WRONG_SEQUENCE
    assert rx.check(f[10]) == OK  # resynchronised on frame 9
    assert rx.check(f[11]) == OK
    assert rx.accepted_count == 5 and rx.refused() == 1


def test_counter_wraps_15_to_0():
    tx = E2ESender(CMD, start=13)
    rx = E2EReceiver(CMD)
    f = sealed_frames(tx, 5)
    assert [CMD.decode(x)["AliveCounter"] for x in f] == [13, 14, 15, 0, 1]
    assert [rx.check(x) for x in f] == [INITIAL, OK, OK, OK, OK]
    rx2 = E2EReceiver(CMD)
    assert rx2.check(f[1]) == INITIAL  # 14
    assert rx2.check(f[4]) == OK_LOST  # 14 -> 1 across the wrap: delta 3
    assert tx.counter == 2


def test_bad_length_refused():
    tx = E2ESender(CMD)
    rx = E2EReceiver(CMD)
    f = sealed_frames(tx, 2)
    assert rx.check(f[0][:7]) == BAD_LENGTH
    assert rx.check(f[0] + b"\x00") == BAD_LENGTH
    assert rx.bad_length == 2
    assert rx.check(f[0]) == INITIAL


def test_reset_after_timeout_makes_next_frame_initial():
    tx = E2ESender(CMD)
    rx = E2EReceiver(CMD)
    f = sealed_frames(tx, 8)
    assert rx.check(f[0]) == INITIAL
    rx.reset()
    assert rx.check(f[7]) == INITIAL


def test_status_helpers_and_validation():
    assert e2e.accepted(OK) and e2e.accepted(OK_LOST) and e2e.accepted(INITIAL)
    for s in (REPEATED, WRONG_SEQUENCE, BAD_CRC, BAD_LENGTH):
        assert not e2e.accepted(s)
    assert e2e.STATUS_NAMES[WRONG_SEQUENCE] == "WRONG_SEQUENCE"
    for bad in (lambda: E2ESender(BY_NAME["GW_Status"]), lambda: E2EReceiver(BY_NAME["MTR_Energy"]),
                lambda: E2EReceiver(CMD, max_delta=0), lambda: E2EReceiver(CMD, max_delta=15)):
        try:
            bad()
            raised = False
        except ValueError:
            raised = True
        assert raised


def test_check_and_seal_allocate_nothing_on_micropython():
    """micropython.mem_total counts every heap allocation, a frame spilled to the heap
    included (heap_lock would hide that: MicroPython then falls back to the C stack)."""
    try:
        from micropython import mem_total
    except ImportError:  # CPython (or a build without memory statistics): nothing to prove
        return
    tx = E2ESender(CMD)
    rx = E2EReceiver(CMD)
    buf = bytearray(CMD.encode(cmd_values(5)))
    statuses = bytearray(4)
    tx.seal(buf)
    statuses[0] = rx.check(buf)
    crc8_j1850(0x1100, buf)
    t0 = mem_total()
    for i in range(1, 4):
        tx.seal(buf)
        statuses[i] = rx.check(buf)
    crc8_j1850(0x1100, buf, 7)
    crc8_sae_j1850(buf)
    used = mem_total() - t0
    assert used == 0, used
    assert list(statuses) == [INITIAL, OK, OK, OK]
