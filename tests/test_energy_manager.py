"""The live energy manager (energy/manager.py, energy/plan_frames.py): the slot mapping, the
frames against cantools and the reference E2E CRC, its decisions on an injected clock (plan,
publication re-plan, slot-boundary re-send, SoC drift, price gaps, EDS failures), the command
line's refusals, and end to end with the real controller and the simulated site on one
python-can virtual bus in real time."""

import json
import pathlib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import uuid

import can
import pytest

from energy import manager, plan_frames, prices, site as site_mod, tariffs
from hil import e2e_ref, scenario
from hil.dbcdb import database

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRICES = ROOT / "energy" / "data" / "prices" / "dk1-2024.csv"
EDS_FILE = ROOT / "tests" / "data" / "eds" / "dayaheadprices-dk1-2025-10-01.json"
UTC = prices.parse_utc
DB = database()  # cantools over every dbc/ file: independent of the firmware's codec
HDR = DB.get_message_by_name("EMS_PlanHdr")
SLOT = DB.get_message_by_name("EMS_PlanSlot")
MODES = ("idle", "charge", "v2h", "v2g")


@pytest.fixture(scope="module")
def series():
    return prices.load(str(PRICES), "DK1")


@pytest.fixture(scope="module")
def site():
    return site_mod.load_site(None)


@pytest.fixture(scope="module")
def tariff():
    return tariffs.load_tariff(tariffs.default_tariff("DK1"))


def _truncated(tmp_path, until):
    """The real DK1 2024 prices up to (excluding) UTC time `until`: a file that ends there."""
    lines = PRICES.read_text().splitlines()
    keep = [lines[0]] + [ln for ln in lines[1:] if UTC(ln.split(",")[0]) < UTC(until)]
    p = tmp_path / "dk1-short.csv"
    p.write_text("\n".join(keep) + "\n")
    return p


# ---------------------------------------------------------------- slot mapping

@pytest.mark.parametrize("p_kw, home_kw, export, want", [
    (0.0, 0.5, True, ("idle", 0)),
    (0.0003, 0.5, True, ("idle", 0)),  # below a watt
    (7.25, 0.5, True, ("charge", 7250)),
    (40.0, 0.5, True, ("charge", 32000)),  # clamped to the DBC's range
    (-0.4, 1.0, True, ("v2h", -400)),  # part of the home: capped at the plan's discharge
    (-1.0, 1.0, True, ("v2h", 0)),  # the whole home: follows its actual load
    (-1.005, 1.0, True, ("v2h", 0)),  # a rounding's worth of export is still V2H
    (-5.0, 1.0, True, ("v2g", -5000)),  # beyond the home with export: V2G at the plan's power
    (-5.0, 1.0, False, ("v2h", 0)),  # no export allowed: never V2G
    (-50.0, 1.0, True, ("v2g", -32000)),
])
def test_slot_command_maps_the_planned_power(p_kw, home_kw, export, want):
    assert plan_frames.slot_command(p_kw, home_kw, export, 1.0) == want


@pytest.mark.parametrize("p_kw, home_kw, export, want", [
    (10.0, 0.5, True, ("charge", 8000)),  # 10 kW from the grid put 8 kW into the battery
    (-0.4, 1.0, True, ("v2h", -500)),  # 0.4 kW into the home take 0.5 kW out of the battery
    (-4.0, 1.0, True, ("v2g", -5000)),
    (-1.0, 1.0, True, ("v2h", 0)),
])
def test_slot_setpoints_are_battery_side_through_the_inverter_efficiency(p_kw, home_kw, export, want):
    assert plan_frames.slot_command(p_kw, home_kw, export, 0.8) == want
    # as the controller converts AC to battery power
    from controller.control.limits import ac_to_batt

    assert want[1] in (0, round(ac_to_batt(p_kw * 1000, 0.8)))


# ---------------------------------------------------------------- frames

def _check_e2e(msg, data):
    did = e2e_ref.data_id(msg)
    assert did and len(data) == 8 and data[7] == e2e_ref.e2e_crc(did, data)


def test_frames_decode_with_cantools_and_carry_a_valid_e2e():
    enc = plan_frames.Encoder()
    slots = [("charge", 11000), ("v2h", 0), ("v2g", -5000), ("idle", 0)] * 12
    frames = enc.plan(5, slots, 900, 123, 30)
    assert len(frames) == 49
    fid, data = frames[0]
    assert fid == HDR.frame_id == 0x313
    _check_e2e(HDR, data)
    h = HDR.decode(data, decode_choices=False)
    assert (h["PlanId"], h["NumSlots"], h["SlotSeconds"], h["Slot0ElapsedS"], h["ReserveSoc"]) == (5, 48, 900, 123, 30)
    counters = []
    for i, (fid, data) in enumerate(frames[1:]):
        assert fid == SLOT.frame_id == 0x314
        _check_e2e(SLOT, data)
        v = SLOT.decode(data, decode_choices=False)
        assert (v["PlanId"], v["Index"], MODES[v["Mode"]], v["SetpointPower"]) == (5, i, *slots[i])
        counters.append(v["AliveCounter"])
    assert counters == [i & 15 for i in range(48)]  # +1 per frame of the message, wrapping
    again = enc.plan(6, [], 900, 0, 0)  # a cancel: the header alone, its counter moved on
    h = HDR.decode(again[0][1], decode_choices=False)
    assert len(again) == 1 and h["AliveCounter"] == 1 and h["NumSlots"] == 0


@pytest.mark.parametrize("args", [
    (1, [("charge", 1000)], 5, 0, 0),  # SlotSeconds below 10
    (1, [("charge", 1000)], 900, 3600, 0),  # Slot0ElapsedS beyond its range
    (1, [("charge", 40000)], 900, 0, 0),  # a setpoint beyond the DBC
    (1, [("idle", 0)] * 49, 900, 0, 0),
])
def test_out_of_range_plans_raise_and_send_nothing(args):
    enc = plan_frames.Encoder()
    with pytest.raises(ValueError):
        enc.plan(*args)
    assert enc.counter == {"EMS_PlanHdr": 0, "EMS_PlanSlot": 0}


def test_hil_energy_manager_builds_its_signals_with_the_same_builder():
    from hil import ems_plan

    assert ems_plan.header_values is plan_frames.header_values
    assert ems_plan.slot_values is plan_frames.slot_values


# ---------------------------------------------------------------- decisions on an injected clock

def test_prices_known_follow_the_13_00_publication():
    # winter (CET): 13:00 local is 12:00Z; the next local day ends at 23:00Z
    assert manager.known_until_s(UTC("2024-03-03T11:59:59Z")) == UTC("2024-03-03T23:00:00Z")
    assert manager.known_until_s(UTC("2024-03-03T12:00:00Z")) == UTC("2024-03-04T23:00:00Z")
    # summer (CEST): 13:00 local is 11:00Z
    assert manager.known_until_s(UTC("2024-07-01T10:59:00Z")) == UTC("2024-07-01T22:00:00Z")
    assert manager.known_until_s(UTC("2024-07-01T11:00:00Z")) == UTC("2024-07-02T22:00:00Z")


class Rig:
    """A manager on a python-can virtual bus with a clock the test sets, a listener on the same
    bus, and real EVCC frames (cantools, reference CRC) fed to the manager."""

    def __init__(self, source, site, tariff, t0, **kw):
        ch = "ems-" + uuid.uuid4().hex
        self.bus = can.Bus(interface="virtual", channel=ch)
        self.rx = can.Bus(interface="virtual", channel=ch)
        self.t = [t0]
        self.lines = []
        self.clock = manager.Clock(start_s=t0, mono=lambda: self.t[0])  # clock.now() == self.t[0]
        self.m = manager.Manager(self.bus, self.clock, source, site, tariff, log=self.lines.append, **kw)
        self.counters = {}

    def close(self):
        self.bus.shutdown()
        self.rx.shutdown()

    def ev(self, soc, session=True, capacity=60.0, at=None):
        if at is not None:
            self.t[0] = UTC(at)
        for name, v in (("EVCC_Limits", {"MaxChargePower": 11000, "MaxDischargePower": 11000, "MinSoc": 10,
                                         "SessionActive": int(session), "MinSocValid": 1}),
                        ("EVCC_Status", {"Soc": soc * 100, "SocValid": 1, "BatteryCapacity": capacity,
                                         "BatteryVoltage": 400})):
            m = DB.get_message_by_name(name)
            c = self.counters.get(name, 0)
            self.counters[name] = (c + 1) & 15
            data = bytearray(m.encode(dict(v, AliveCounter=c, Crc=0)))
            data[7] = e2e_ref.e2e_crc(e2e_ref.data_id(m), data)
            self.m.on_message(can.Message(arbitration_id=m.frame_id, data=bytes(data), is_extended_id=False))

    def step(self, when):
        self.t[0] = UTC(when) if isinstance(when, str) else when
        return self.m.step(self.clock.now())

    def sets(self):
        """The plan sets on the bus since the last call: [(header, [slots])], each frame's CRC checked."""
        out = []
        while True:
            msg = self.rx.recv(timeout=0.2)
            if msg is None:
                return out
            data = bytes(msg.data)
            if msg.arbitration_id == HDR.frame_id:
                _check_e2e(HDR, data)
                out.append((HDR.decode(data, decode_choices=False), []))
            elif msg.arbitration_id == SLOT.frame_id:
                _check_e2e(SLOT, data)
                out[-1][1].append(SLOT.decode(data, decode_choices=False))


@pytest.fixture
def rig_at(series, site, tariff):
    rigs = []

    def make(t0, source=None, **kw):
        r = Rig(source or manager.FilePrices(series), site, tariff, UTC(t0), **kw)
        rigs.append(r)
        return r
    yield make
    for r in rigs:
        r.close()


def test_plans_replans_at_publication_and_resends_at_each_slot_boundary(rig_at):
    r = rig_at("2024-03-03T11:40:00Z")
    assert r.step("2024-03-03T11:40:00Z") is None  # no EV state yet: nothing sent
    assert "waiting for the EV's state" in r.lines[-1] and r.sets() == []
    r.ev(0.5, at="2024-03-03T11:40:06Z")
    assert r.step("2024-03-03T11:40:07Z") == "start"
    (hdr, slots), = r.sets()
    p = r.m.plan
    # before 13:00 local only today's prices are known: 11:30Z .. 23:00Z
    assert p.t0 == UTC("2024-03-03T11:30:00Z") and len(p.p_kw) == 46
    assert (hdr["NumSlots"], hdr["SlotSeconds"], hdr["Slot0ElapsedS"], hdr["ReserveSoc"]) == (32, 900, 607, 30)
    assert [(MODES[s["Mode"]], s["SetpointPower"]) for s in slots] == r.m.commands(p, 0, 32)
    r.ev(0.5, at="2024-03-03T11:44:58Z")
    assert r.step("2024-03-03T11:44:59Z") is None and r.sets() == []  # same slot, nothing new
    # 11:45Z: a slot boundary, the rest of the same plan again under a new id
    assert r.step("2024-03-03T11:45:00Z") == "slot"
    (hdr2, slots2), = r.sets()
    assert r.m.plan is p and hdr2["PlanId"] == (hdr["PlanId"] + 1) & 15 and hdr2["Slot0ElapsedS"] == 0
    assert [(MODES[s["Mode"]], s["SetpointPower"]) for s in slots2] == r.m.commands(p, 1, 33)
    # 12:00Z = 13:00 local: tomorrow's prices are out, a new plan to the end of tomorrow
    r.ev(p.soc[2], at="2024-03-03T12:00:00Z")  # on plan: no drift
    assert r.step("2024-03-03T12:00:01Z") == "prices"
    assert len(r.m.plan.p_kw) == 140 and r.m.plan.t0 == UTC("2024-03-03T12:00:00Z")
    assert r.sets()[0][0]["Slot0ElapsedS"] == 1
    assert [ln.split(" ")[3] for ln in r.lines if " plan sent" not in ln] == ["(start):", "(slot):", "(prices):"]


def test_a_soc_drift_replans_once_past_the_threshold(rig_at):
    r = rig_at("2024-03-03T01:50:00Z")
    r.ev(0.5)
    assert r.step("2024-03-03T01:50:00Z") == "start"
    p = r.m.plan
    assert p.p_kw[0] > 0  # the night's cheap hours: charging
    t = UTC("2024-03-03T01:52:00Z")
    r.t[0] = t
    exp = r.m._expected_soc(p, t)
    r.ev(exp + 0.5 * manager.REPLAN_SOC)
    assert r.step(t) is None  # within the threshold
    r.ev(exp - 3 * manager.REPLAN_SOC)
    assert r.step(t) == "soc drift"
    assert abs(r.m.plan.soc[0] - (exp - 3 * manager.REPLAN_SOC)) < 1e-3  # planned from the measured SoC


def test_a_price_gap_sends_nothing_says_so_once_and_retries(rig_at, tmp_path):
    short = prices.load(str(_truncated(tmp_path, "2024-03-03T02:00:00Z")), "DK1")
    r = rig_at("2024-03-03T01:59:50Z", source=manager.FilePrices(short))
    r.ev(0.5)
    assert r.step("2024-03-03T01:59:50Z") == "start"
    (hdr, slots), = r.sets()
    assert hdr["NumSlots"] == 1 and hdr["Slot0ElapsedS"] == 890  # only the priced slot: it expires with it
    for t in ("2024-03-03T02:00:00Z", "2024-03-03T02:00:30Z", "2024-03-03T02:15:00Z"):
        r.ev(0.5, at=t)
        assert r.step(t) is None
    assert r.sets() == []  # no plan, no cancel, no invented price
    gap = [ln for ln in r.lines if "no price" in ln]
    assert len(gap) == 1 and "2024-03-03T02:00:00Z" in gap[0] and "dk1-short.csv" in gap[0]


def test_no_ev_in_session_sends_nothing(rig_at):
    r = rig_at("2024-03-03T01:50:00Z")
    r.ev(0.5, session=False)
    assert r.step("2024-03-03T01:50:00Z") is None and r.sets() == []
    assert r.lines == ["2024-03-03T01:50:00Z no plan sent: no EV in session"]


def test_a_speedup_shrinks_the_slots_on_the_bus(rig_at):
    with pytest.raises(manager.ManagerError, match="--speedup"):
        manager.slot_seconds_on_bus(7)  # 128.57 s: not whole
    with pytest.raises(manager.ManagerError, match="--speedup"):
        manager.slot_seconds_on_bus(100)  # 9 s: below the DBC's 10
    r = rig_at("2024-03-03T01:40:00Z", speedup=60)
    r.ev(0.5)
    assert r.step("2024-03-03T01:40:00Z") == "start"
    (hdr, _), = r.sets()
    assert (hdr["SlotSeconds"], hdr["Slot0ElapsedS"]) == (15, 10)  # 10 of the slot's 15 manager minutes


def test_a_corrupted_ev_frame_is_counted_and_ignored(rig_at):
    r = rig_at("2024-03-03T01:40:00Z")
    r.ev(0.5)
    m = DB.get_message_by_name("EVCC_Status")
    data = bytearray(m.encode({"Soc": 90, "SocValid": 1, "BatteryCapacity": 60, "BatteryVoltage": 400,
                               "AliveCounter": 5, "Crc": 0}))
    data[7] = e2e_ref.e2e_crc(e2e_ref.data_id(m), data) ^ 0x01
    r.m.on_message(can.Message(arbitration_id=m.frame_id, data=bytes(data), is_extended_id=False))
    r.m.on_message(can.Message(arbitration_id=m.frame_id, data=bytes(data[:7]), is_extended_id=False))
    assert r.m.rx_refused == 2 and r.m.soc == 0.5


class EdsOpener:
    """Answers Energi Data Service requests from the written 2025-10-01 response (the records of
    the asked local range, as the API filters them), or fails while `fail` is set."""

    def __init__(self):
        self.fail = False
        self.calls = 0

    def __call__(self, url, timeout):
        self.calls += 1
        if self.fail:
            raise urllib.error.URLError("network unreachable")
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))
        doc = json.loads(EDS_FILE.read_text())
        doc["records"] = [x for x in doc["records"] if q["start"] <= x["TimeDK"][:16] < q["end"]]
        return json.dumps(doc).encode()


def test_eds_prices_plan_and_a_failure_is_a_gap_retried(rig_at):
    op = EdsOpener()
    op.fail = True
    r = rig_at("2025-10-01T08:00:00Z", source=manager.EdsPrices("DK1", opener=op))
    r.ev(0.6)
    assert r.step("2025-10-01T08:00:00Z") is None and r.sets() == []
    assert "Energi Data Service" in r.lines[-1] and "network unreachable" in r.lines[-1]
    op.fail = False
    r.ev(0.6, at="2025-10-01T08:00:30Z")
    assert r.step("2025-10-01T08:00:30Z") is None and op.calls == 1  # not asked again before RETRY_S
    r.ev(0.6, at="2025-10-01T08:01:00Z")
    assert r.step("2025-10-01T08:01:00Z") == "start" and op.calls == 2
    assert len(r.m.plan.p_kw) == 56  # 08:00Z .. 22:00Z: today's 15-min prices (before 13:00 local)
    assert len(r.sets()) == 1


def test_a_raised_reserve_is_planned_with_and_sent(series, site, tariff):
    """Ahead of a storm the reserve goes up (`--reserve`, or the site's reserve_soc): the plan
    keeps the EV at or above it while plugged, and the header asks the firmware for it."""
    raised = dict(site, reserve_soc=0.6)
    r = Rig(manager.FilePrices(series), raised, tariff, UTC("2024-03-03T11:40:00Z"))
    try:
        r.ev(0.7, at="2024-03-03T11:40:06Z")
        assert r.step("2024-03-03T11:40:07Z") == "start"
        (hdr, _slots), = r.sets()
        assert hdr["ReserveSoc"] == 60
        p = r.m.plan
        assert min(p.soc) >= 0.6 - 1e-6  # a Sunday: the EV is home all along the plan
    finally:
        r.close()


# ---------------------------------------------------------------- command line

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tools.cli", "energy", "manager", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_bad_arguments_exit_2_naming_them(tmp_path):
    bad = tmp_path / "broken.csv"
    bad.write_text("time_utc,price_area,price_eur_mwh\n2024-01-01T00:00:00Z,DK1,abc\n")
    cases = [
        (("--area", "XX1", "--prices", str(PRICES)), "--area"),
        (("--area", "DK1", "--prices", str(bad)), "broken.csv"),
        (("--area", "DK1", "--prices", str(tmp_path / "nope.csv")), "nope.csv"),
        (("--area", "DK1", "--prices", str(PRICES), "--start-utc", "2030-01-01T00:00:00Z"), "--start-utc"),
        (("--area", "DK1", "--prices", str(PRICES), "--speedup", "7"), "--speedup"),
        (("--area", "DK1", "--prices", str(PRICES), "--plan-slots", "49"), "--plan-slots"),
        (("--area", "DK1", "--prices", str(PRICES), "--tariff", "no-such"), "no-such"),
        (("--area", "DK1", "--prices", str(PRICES), "--reserve", "1.5"), "--reserve"),
    ]
    for args, name in cases:
        r = _cli("--channel", "ems-" + uuid.uuid4().hex, "--duration", "0.2", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert name in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


# ---------------------------------------------------------------- end to end with the controller

def _end_to_end(prices_path, start, duration_s):
    """The simulated site and the real controller (hil.runner.run_realtime, its own EMS
    silent) with the energy manager and a listener on one python-can virtual bus, in real
    time; returns (manager, its log lines, [(t, decoded frame name, values)])."""
    from hil.runner import run_realtime

    ch = "ems-e2e-" + uuid.uuid4().hex

    def bus():
        return can.Bus(interface="virtual", channel=ch, receive_own_messages=False)

    sc = scenario.validate({"name": "ems", "duration_s": duration_s, "ev": {"soc": 0.5, "capacity_kwh": 60.0},
                            "events": [{"t_s": 0.0, "kind": "can_silence", "node": "ems",
                                        "duration_s": duration_s + 10}]})
    s = prices.load(str(prices_path), "DK1")
    lines = []
    stop = threading.Event()
    mbus, lbus = bus(), bus()
    m = manager.Manager(mbus, manager.Clock(start_s=UTC(start)), manager.FilePrices(s), site_mod.load_site(None),
                        tariffs.load_tariff("dk1-n1"), log=lines.append)
    seen = []
    names = {DB.get_message_by_name(n).frame_id: DB.get_message_by_name(n)
             for n in ("GW_Status", "GW_Event", "EMS_PlanHdr", "EMS_PlanSlot", "GW_InverterCmd")}

    def listen():
        while not stop.is_set():
            msg = lbus.recv(0.05)
            if msg is not None and msg.arbitration_id in names:
                mm = names[msg.arbitration_id]
                seen.append((time.monotonic(), mm.name, bytes(msg.data), mm.decode(bytes(msg.data),
                                                                                   decode_choices=False)))
    threads = [threading.Thread(target=m.run, kwargs={"stop": stop.is_set}), threading.Thread(target=listen)]
    for t in threads:
        t.start()
    try:
        run_realtime(sc, bus)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        mbus.shutdown()
        lbus.shutdown()
    return m, lines, seen


def _after(seen, t, name):
    return [(tt, v) for tt, n, _, v in seen if n == name and tt >= t]


def test_controller_accepts_and_follows_the_managers_plan_and_its_resend():
    # 02:59:55 local on a Sunday, DK1 2024 prices: the night's cheap hour, the EV at 50 %
    m, lines, seen = _end_to_end(PRICES, "2024-03-03T01:59:55Z", 8.0)
    sets = [(t, v) for t, n, _, v in seen if n == "EMS_PlanHdr"]
    assert len(sets) >= 2, lines  # the first plan, and the re-send at the 02:00Z boundary
    for _, name, data, _ in seen:
        if name.startswith("EMS_Plan"):
            _check_e2e(DB.get_message_by_name(name), data)
    accepted = [v for _, v in _after(seen, 0, "GW_Event") if v["EventCode"] == 22]
    assert [(a["EventDetail"], a["EventValue"]) for a in accepted[:2]] == \
        [(h["PlanId"], h["NumSlots"]) for _, h in sets[:2]]
    assert list(m.accepted)[:2] == [(h["PlanId"], h["NumSlots"]) for _, h in sets[:2]]  # the manager saw them too
    first = [v for _, n, _, v in seen if n == "EMS_PlanSlot" and v["PlanId"] == sets[0][1]["PlanId"]
             and v["Index"] == 0][0]
    assert MODES[first["Mode"]] == "charge" and first["SetpointPower"] == 10670  # 11 kW AC x 0.97
    # the controller follows it: GW_Status reports Charge, and it commands the inverter to charge
    st = _after(seen, sets[0][0] + 1.0, "GW_Status")
    assert st and all(v["OperatingMode"] == 1 for _, v in st)
    cmd = _after(seen, sets[0][0] + 1.5, "GW_InverterCmd")
    assert cmd and max(v["PSetpoint"] for _, v in cmd) > 5000
    first_line = [ln for ln in lines if "plan 1 (start)" in ln]
    assert first_line and "first charge 11.00 kW" in first_line[0]
    assert any("(slot)" in ln for ln in lines)
    assert m.rx_refused == 0


def test_a_price_gap_lets_the_plan_expire_into_the_controllers_fallback(tmp_path):
    short = _truncated(tmp_path, "2024-03-03T02:00:00Z")
    m, lines, seen = _end_to_end(short, "2024-03-03T01:59:56Z", 8.0)
    sets = [(t, v) for t, n, _, v in seen if n == "EMS_PlanHdr"]
    assert len(sets) == 1 and sets[0][1]["NumSlots"] == 1  # the last priced slot, then nothing
    ended = [(t, v) for t, v in _after(seen, 0, "GW_Event") if v["EventCode"] == 23]
    assert ended and ended[0][1]["EventDetail"] == 1  # PlanEnded: expired
    # the fallback (plan.fallback v2h, the SoC well above the reserve): V2H
    st = _after(seen, ended[0][0] + 0.5, "GW_Status")
    assert st and all(v["OperatingMode"] == 2 for _, v in st)
    assert sum("no price" in ln for ln in lines) == 1
    assert any("gateway: plan %d expired" % sets[0][1]["PlanId"] in ln for ln in lines), lines
