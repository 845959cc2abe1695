"""The external power limit (EMS_PowerLimit: OCPP 2.1 ExternalLimits or the energy manager):
the arbiter's bounds (controller/control/limits.py), its validity
(controller/control/external_limit.py) and the gateway that receives it
(controller/control/gateway.py). Runs under MicroPython (mp_run.py) and CPython (pytest)."""

from controller import config, events
from controller.bus import candb
from controller.control import limits
from controller.control.external_limit import ExternalLimit
from controller.control.gateway import Gateway
from sitebus import CrcFlip, Site
from test_limits import Lcg

EFF = 0.97


def _arb(**site):
    return limits.Arbiter(config.validate({"site": site} if site else {}))


# ---------------------------------------------------------------- the arbiter
def test_external_limit_binds_and_is_named():
    a = _arb()
    a.update(True, 11000, 11000, 50.0, 20.0, 230.0, 0, ext_charge_w=5000, ext_discharge_w=3000)
    # AC at the inverter's terminals, to battery power rounded toward zero (never wider)
    assert a.clamp(8000) == (4850, limits.EXTERNAL)  # 5000 x 0.97
    assert a.clamp(-8000) == (-3092, limits.EXTERNAL)  # 3000 / 0.97 = 3092.8
    assert a.clamp(1000) == (1000, limits.NONE)
    assert a.clamp(-1000) == (-1000, limits.NONE)
    assert limits.EXTERNAL == 13


def test_zero_stops_a_direction_and_negative_counts_as_zero():
    a = _arb()
    a.update(True, 11000, 11000, 50.0, 20.0, 230.0, 0, ext_charge_w=0, ext_discharge_w=4000)
    assert a.clamp(3000) == (0, limits.EXTERNAL)
    assert a.clamp(-3000) == (-3000, limits.NONE)
    a.update(True, 11000, 11000, 50.0, 20.0, 230.0, 0, ext_charge_w=2000, ext_discharge_w=-5)
    assert a.clamp(-3000) == (0, limits.EXTERNAL)
    assert a.clamp(3000) == (1940, limits.EXTERNAL)


def test_none_is_no_limit():
    a = _arb()
    b = _arb()
    a.update(True, 9000, 7000, 50.0, 20.0, 230.0, 500)
    b.update(True, 9000, 7000, 50.0, 20.0, 230.0, 500, ext_charge_w=None, ext_discharge_w=None)
    assert (a.hi_w, a.lo_w, a.hi_by, a.lo_by) == (b.hi_w, b.lo_w, b.hi_by, b.lo_by)
    # one direction limited, the other not
    b.update(True, 9000, 7000, 50.0, 20.0, 230.0, 500, ext_charge_w=1000)
    assert b.hi_by == limits.EXTERNAL and (b.lo_w, b.lo_by) == (a.lo_w, a.lo_by)


def test_never_widens_the_gateways_own_limits():
    a = _arb(export_limit_kw=2.0)
    a.update(True, 3000, 2000, 50.0, 20.0, 230.0, 0)
    own = (a.hi_w, a.lo_w, a.hi_by, a.lo_by)
    # the full scale, and limits above the EV's and the export limit: nothing moves
    for c, d in ((32000, 32000), (3100 / EFF + 10, 2500 * EFF + 10)):
        a.update(True, 3000, 2000, 50.0, 20.0, 230.0, 0, ext_charge_w=int(c), ext_discharge_w=int(d))
        assert (a.hi_w, a.lo_w, a.hi_by, a.lo_by) == own
    # where the external limit only equals one of the gateway's own, that one keeps the name
    a.update(True, 11000, 11000, 15.0, 20.0, 230.0, 0, ext_discharge_w=0)
    assert a.clamp(-1000) == (0, limits.MIN_SOC)
    a.update(True, 11000, 11000, 25.0, 10.0, 230.0, 0, reserve_pct=30.0, ext_discharge_w=0)
    assert a.clamp(-1000) == (0, limits.RESERVE)
    # and without fresh inputs both bounds are 0 whatever it says
    a.update(False, 11000, 11000, 50.0, 20.0, 230.0, 0, ext_charge_w=32000, ext_discharge_w=32000)
    assert a.clamp(5000) == (0, limits.INPUT_TIMEOUT) and a.clamp(-5000) == (0, limits.INPUT_TIMEOUT)


def test_randomized_clamp_within_every_limit_and_only_narrower():
    """Property, fixed seed: the clamp stays within every limit, the external one included;
    the bounds are the gateway's own ones narrowed by exactly the external limit (never
    wider), and EXTERNAL is named exactly where it is strictly tighter."""
    rng = Lcg(1316)
    a = _arb(main_fuse_a=25.0, export_limit_kw=5.0)
    own = _arb(main_fuse_a=25.0, export_limit_kw=5.0)  # the same inputs without the external limit
    for i in range(2000):
        ch = rng.uniform(0.0, 30000.0)
        dis = rng.uniform(0.0, 30000.0)
        soc = rng.uniform(0.0, 100.0)
        min_soc = rng.uniform(0.0, 60.0)
        v = rng.uniform(0.0, 280.0)
        load = rng.uniform(-3000.0, 20000.0)
        reserve = None if i % 3 == 0 else rng.uniform(0.0, 100.0)
        ec = None if i % 5 == 0 else int(rng.uniform(0.0, 32000.0)) if i % 7 else 0
        ed = None if i % 4 == 0 else int(rng.uniform(0.0, 32000.0)) if i % 11 else 0
        a.update(True, ch, dis, soc, min_soc, v, load, reserve_pct=reserve, ext_charge_w=ec, ext_discharge_w=ed)
        own.update(True, ch, dis, soc, min_soc, v, load, reserve_pct=reserve)
        p, by = a.clamp(rng.uniform(-40000.0, 40000.0))
        assert a.lo_w <= p <= a.hi_w
        assert p <= ch + 1e-9 and -p <= dis + 1e-9
        if soc <= min_soc:
            assert p >= 0
        if ec is not None:
            assert p <= ec * EFF + 1e-9
        if ed is not None:
            assert -p <= ed / EFF + 1e-9
        # only narrower, by the external limit and nothing else
        assert a.hi_w <= own.hi_w and a.lo_w >= own.lo_w
        hi = own.hi_w if ec is None else min(own.hi_w, ec * 970 // 1000)
        lo = own.lo_w if ed is None else max(own.lo_w, -(ed * 1000 // 970))
        assert (a.hi_w, a.lo_w) == (hi, lo), (i, a.hi_w, a.lo_w, hi, lo)
        assert (a.hi_by == limits.EXTERNAL) == (a.hi_w < own.hi_w)
        assert (a.lo_by == limits.EXTERNAL) == (a.lo_w > own.lo_w)
        if a.hi_by != limits.EXTERNAL:
            assert a.hi_by == own.hi_by
        if a.lo_by != limits.EXTERNAL:
            assert a.lo_by == own.lo_by


# ---------------------------------------------------------------- its validity
def test_validity_and_cancel():
    x = ExternalLimit()
    assert not x.expire(0) and x.charge_w is None
    assert x.take(4000, 2000, 2, 0)
    assert (x.charge_w, x.discharge_w) == (4000, 2000)
    assert not x.expire(1999999) and x.in_force
    assert x.expire(2000000) and x.charge_w is None and x.discharge_w is None
    assert not x.expire(2100000)  # once
    assert x.take(4000, 2000, 60, 0)
    assert not x.take(1, 1, 0, 10) and not x.in_force  # ValidFor 0: cancelled at once


def test_validity_right_across_the_ticks_wrap_and_beyond_half_the_period():
    # 15 minutes (more than the ~9 minutes a raw ticks_us difference spans), starting
    # just before the wrap of the clock, advanced every 100 ms
    from controller.clock import ticks_add

    x = ExternalLimit()
    t = ticks_add(0, -50000000)
    x.take(3000, 3000, 900, t)
    for _ in range(8999):
        t = ticks_add(t, 100000)
        assert not x.expire(t)
    t = ticks_add(t, 100000)
    assert x.expire(t)


def test_no_allocation_per_period_with_a_limit_in_force():
    # MicroPython only (CPython has no gc.mem_alloc): the limit's validity and the arbiter
    # with it, as every control period runs them (positional, as the gateway calls it)
    import gc

    if not hasattr(gc, "mem_alloc"):
        return
    a = _arb()
    x = ExternalLimit()
    x.take(5000, 3000, 600, 0)
    t = 0
    for _ in range(3):  # warm up (the reserve's threshold is computed once)
        t += 10000
        x.expire(t)
        a.update(True, 11000, 11000, 50.0, 20.0, 230.0, 1000, 0, None, 20.0, x.charge_w, x.discharge_w)
    gc.collect()
    gc.disable()
    try:
        m0 = gc.mem_alloc()
        for _ in range(500):
            t += 10000
            x.expire(t)
            a.update(True, 11000, 11000, 50.0, 20.0, 230.0, 1000, 0, None, 20.0, x.charge_w, x.discharge_w)
            a.limit(-8000)
        m1 = gc.mem_alloc()
    finally:
        gc.enable()
    assert m1 == m0, m1 - m0
    assert a.by == limits.EXTERNAL and x.charge_w == 5000


# ---------------------------------------------------------------- the gateway
PERIOD = 100000  # us: 100 ms control periods keep the seconds of validity short to run
PER_S = 10


def _gw(mode="v2g", setpoint_kw=-6.0):
    site = Site()
    gw = Gateway(config.validate({"mode": {"kind": mode, "setpoint_kw": setpoint_kw},
                                  "limits": {"ramp_up_kw_per_s": None},
                                  "control": {"recover_hold_ms": 0, "period_ms": 100}}), site.gw_port)
    seen = []
    gw.listeners.append(lambda code, detail, value: seen.append((code, detail, value)))
    return gw, site, seen


def _run(gw, site, t, seconds):
    for _ in range(int(seconds * PER_S + 0.5)):
        site.send_all()
        gw.poll(t)
        gw.tick(t)
        t += PERIOD
    return t


def _limit(site, charge_w=32000, discharge_w=32000, valid_s=10):
    return site.dev.send("EMS_PowerLimit", MaxChargePower=charge_w, MaxDischargePower=discharge_w, ValidFor=valid_s)


def test_limit_taken_on_the_fast_path_and_reported():
    gw, site, seen = _gw()
    t = _run(gw, site, 0, 1)
    assert gw.p_cmd == -6000 and gw.ext is None  # no frame yet: the unit is not even loaded
    site.commands()
    _limit(site, discharge_w=3000)
    gw.poll(t)  # no tick: the fast path alone must act
    cmd = site.last("GW_InverterCmd")
    assert cmd is not None and cmd["PSetpoint"] == -3092 and gw.limiting == limits.EXTERNAL
    t = _run(gw, site, t, 1)
    assert gw.p_cmd == -3092
    assert site.last("GW_Status")["LimitingFactor"] == limits.EXTERNAL
    assert (events.LIMIT_CHANGE, limits.EXTERNAL, -3092) in seen
    assert gw.refused_total == 0


def test_limit_lapses_after_its_validity():
    gw, site, _ = _gw(mode="charge", setpoint_kw=7.0)
    t = _run(gw, site, 0, 1)
    _limit(site, charge_w=2000, valid_s=3)
    t = _run(gw, site, t, 3)
    assert gw.p_cmd == 1940 and gw.limiting == limits.EXTERNAL
    t = _run(gw, site, t, 0.2)  # 3 s after its reception: no external limit
    assert gw.p_cmd == 7000 and gw.limiting == limits.NONE and gw.ext.charge_w is None


def test_repetitions_with_the_remaining_validity_and_a_new_value():
    gw, site, _ = _gw(mode="charge", setpoint_kw=7.0)
    t = _run(gw, site, 0, 1)
    _limit(site, charge_w=2000, valid_s=3)
    t = _run(gw, site, t, 1)
    _limit(site, charge_w=1000, valid_s=2)  # repeated a second later, with a new value
    t = _run(gw, site, t, 1.9)
    assert gw.p_cmd == 970  # the new frame replaced the limit whole
    t = _run(gw, site, t, 0.2)
    assert gw.p_cmd == 7000  # ended when the schedule said (3 s after the first)


def test_cancel_with_validity_zero():
    gw, site, _ = _gw()
    t = _run(gw, site, 0, 1)
    _limit(site, discharge_w=1000, valid_s=600)
    t = _run(gw, site, t, 1)
    assert gw.p_cmd == -1030
    _limit(site, discharge_w=1000, valid_s=0)
    t = _run(gw, site, t, 0.1)
    assert gw.p_cmd == -6000 and gw.limiting == limits.NONE


def test_refused_frames_counted_and_the_limit_in_force_stays():
    gw, site, seen = _gw()
    t = _run(gw, site, 0, 1)
    good = _limit(site, discharge_w=2000, valid_s=60)
    t = _run(gw, site, t, 1)
    assert gw.p_cmd == -2061 and gw.refused_total == 0
    fid = candb.ID_EMS_PowerLimit
    # a cancel broken on the bus (CRC)
    site.dev.port = CrcFlip(site.dev.port)
    _limit(site, discharge_w=2000, valid_s=0)
    site.dev.port = site.dev.port.port
    gw.poll(t)
    assert gw.refused[events.R_CRC] == 1
    # the earlier frame again: its alive counter did not move (a replay, a frozen sender)
    site.port.send(fid, good)
    gw.poll(t)
    assert gw.refused[events.R_COUNTER] == 1
    # a value beyond the DBC range
    _limit(site, charge_w=40000, discharge_w=32000, valid_s=60)
    gw.poll(t)
    assert gw.refused[events.R_RANGE] == 1
    # a wrong length
    site.port.send(fid, b"\x00\x00\x00\x00")
    gw.poll(t)
    assert gw.refused[events.R_LENGTH] == 1 and gw.refused_total == 4
    t = _run(gw, site, t, 1)
    assert gw.p_cmd == -2061 and gw.limiting == limits.EXTERNAL  # the limit in force is unchanged
    assert gw.ext.discharge_w == 2000 and gw.ext.charge_w == 32000
    refused = [(d, v) for c, d, v in seen if c == events.FRAME_REFUSED]
    assert refused and refused[-1][1] == fid
    assert site.last("GW_Status")["RxRefused"] == 4
    # and the sender's next intact frame is taken again
    _limit(site, discharge_w=2500, valid_s=60)
    t = _run(gw, site, t, 0.5)
    assert gw.p_cmd == -2577


class _Recorder(limits.Arbiter):
    """The arbiter, recording the external limit the gateway passes it."""

    def update(self, *args, **kw):
        self.seen = args[-2:]
        super().update(*args, **kw)


def test_not_applied_in_backup_and_its_validity_runs_on():
    gw, site, _ = _gw(mode="v2h")
    gw.arbiter = _Recorder(gw.cfg)
    t = _run(gw, site, 0, 1)
    assert gw.arbiter.seen == (None, None)
    _limit(site, charge_w=1000, discharge_w=500, valid_s=4)
    t = _run(gw, site, t, 0.5)
    assert gw.arbiter.seen == (1000, 500)
    assert gw.p_cmd == -515 and gw.limiting == limits.EXTERNAL  # the home's ~1 kW: the limit binds
    # a hard outage: the relay opens, the inverter forms the island that carries the home
    site.dev.send("INV_AcLossEvent", LossReason=1, VoltageAtEvent=20.0)
    gw.poll(t)
    site.grid_v = 0.0
    site.relay_state = 0
    site.inv_v = 230.0
    t = _run(gw, site, t, 0.5)
    assert gw.backup.state == 2 and gw.inv_mode == 2  # backup, grid-forming
    assert gw.arbiter.seen == (None, None)  # the external limit is not the island's
    assert gw.limiting != limits.EXTERNAL
    assert gw.ext.discharge_w == 500  # kept: it would apply again back on the grid
    t = _run(gw, site, t, 3)
    assert gw.ext.discharge_w == 500  # 3.9 s after its reception
    t = _run(gw, site, t, 0.1)  # 4 s
    assert gw.ext.discharge_w is None and gw.arbiter.seen == (None, None)
