"""Property: no command the gateway sends ever exceeds a limit in force.

Hypothesis drives the real Gateway with arbitrary sequences of site inputs (EV limits,
state of charge, grid voltage, grid and inverter power, mode requests, external power
limits, silences) and checks every GW_InverterCmd against the bounds recomputed
independently here from the newest inputs the gateway accepted.
"""

import sys
import pathlib

from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "firmware"))

from controller import config, events  # noqa: E402
from controller.control import limits
from controller.control.gateway import Gateway  # noqa: E402
from sitebus import Site  # noqa: E402

EFF = 0.97
RATING = 11000.0
FUSE = 25.0
EXPORT = 5000.0

STEP = {
    "ev_charge": st.integers(0, 20000).map(lambda w: w // 10 * 10),
    "ev_discharge": st.integers(0, 20000).map(lambda w: w // 10 * 10),
    "soc": st.integers(0, 1000).map(lambda x: x / 10.0),
    "min_soc": st.integers(0, 200).map(lambda x: x / 2.0),
    "grid_v": st.integers(0, 26000).map(lambda x: x / 100.0),
    "p_grid": st.integers(-20000, 30000),
    "p_inv": st.integers(-15000, 15000),
    "mode": st.sampled_from([events.IDLE, events.CHARGE, events.V2H, events.V2G]),
    "setpoint": st.integers(-30000, 30000),
    "silent": st.sampled_from([None, "meter", "ev", "inverter"]),
    # EMS_PowerLimit (AC W, magnitudes; ValidFor s, 0 = cancel) sent with the step, or nothing
    # (small limits often: most commands are only a few kW)
    "ext": st.one_of(st.none(), st.tuples(*[st.integers(0, 3000) | st.integers(0, 32000)] * 2, st.integers(0, 2))),
    "ticks": st.integers(1, 4),
}
step = st.fixed_dictionaries(STEP)
# a healthy grid (no trip, no separation) with fresh inputs: grid-connected throughout, so
# that an external limit in force is what every command meets
healthy_step = st.fixed_dictionaries(dict(STEP, grid_v=st.just(230.0), silent=st.just(None),
                                          p_grid=st.integers(-3000, 8000), p_inv=st.integers(-3000, 3000)))


def _bounds(v, ev, soc_min_ok, load, ext=None):
    """Independent recomputation of the battery-power bounds from the module docstring
    (ext: the external limit in force, (charge, discharge) AC W, or None)."""
    hi = min(ev["MaxChargePower"], RATING * min(1.0, v / 230.0) * EFF)
    lo = max(-ev["MaxDischargePower"], -RATING * min(1.0, v / 230.0) / EFF)
    if not soc_min_ok:
        lo = max(lo, 0.0)
    p_fuse = 3 * v * FUSE
    hi = min(hi, limits.ac_to_batt(p_fuse - load, EFF))
    lo = max(lo, limits.ac_to_batt(-p_fuse - load, EFF), limits.ac_to_batt(-EXPORT - load, EFF))
    if ext is not None:
        hi = min(hi, ext[0] * EFF)
        lo = max(lo, -ext[1] / EFF)
    return min(lo, 0.0), max(hi, 0.0)


def _drive(steps):
    """Play the steps; check every inverter command at the instant it is sent against the bounds
    recomputed here from the inputs the gateway had accepted by then; return how many were checked,
    and how many of them with an external limit in force that bound the command."""
    cfg = config.validate({"site": {"main_fuse_a": FUSE, "export_limit_kw": EXPORT / 1000},
                           "control": {"recover_hold_ms": 0}, "limits": {"ramp_up_kw_per_s": 50.0}})
    site = Site()
    gw = Gateway(cfg, site.gw_port)
    checked = [0, 0]
    ext = [None, 0, 0]  # the external limit as sent: (charge, discharge), its reception, ValidFor in us
    now = [0]
    send_cmd = gw._send_cmd

    def checked_send():
        send_cmd()
        p = gw.out.cmd.sig["PSetpoint"]
        if gw.safe or not gw.inputs_ok or gw.out.cmd.sig["InvModeReq"] != 1:
            assert p == 0  # no power setpoint unless grid-following and healthy
            return
        ev = gw.ev_limits.values
        soc_ok = gw.ev_status.values["Soc"] > ev["MinSoc"]
        # grid-connected, an external limit holds for its validity after its reception
        in_force = ext[0] is not None and gw.backup.state == 0 and now[0] - ext[1] < ext[2]
        lo, hi = _bounds(gw.mtr_grid.values["GridVoltage"], ev, soc_ok, gw._load_w(), ext[0] if in_force else None)
        assert lo - 1e-6 <= p <= hi + 1e-6, (p, lo, hi)
        checked[0] += 1
        if in_force and gw.limiting == limits.EXTERNAL:
            checked[1] += 1

    gw._send_cmd = checked_send
    t = 0
    for s in steps:
        site.ev = {"MaxChargePower": s["ev_charge"], "MaxDischargePower": s["ev_discharge"],
                   "MinSoc": s["min_soc"], "SessionActive": 1, "MinSocValid": 1}
        site.soc, site.grid_v, site.p_grid, site.p_inv = s["soc"], s["grid_v"], s["p_grid"], s["p_inv"]
        site.dev.send("EMS_ModeRequest", ModeReq=s["mode"], SetpointPower=s["setpoint"])
        if s["ext"] is not None:
            c, d, valid_s = s["ext"]
            site.dev.send("EMS_PowerLimit", MaxChargePower=c, MaxDischargePower=d, ValidFor=valid_s)
            ext[:] = [(c, d) if valid_s else None, t, valid_s * 1000000]
        for _ in range(s["ticks"]):
            site.send_all(meter=s["silent"] != "meter", ev=s["silent"] != "ev", inverter=s["silent"] != "inverter")
            now[0] = t
            gw.poll(t)
            gw.tick(t)
            t += 10000
            site.commands()
    return checked


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=25))
def test_no_command_exceeds_a_limit(steps):
    _drive(steps)


@settings(max_examples=100, deadline=None)
@given(st.lists(healthy_step, min_size=1, max_size=25))
def test_no_command_exceeds_an_external_limit_while_grid_connected(steps):
    _drive(steps)


def test_the_property_sees_real_commands():
    healthy = {"ev_charge": 11000, "ev_discharge": 3000, "soc": 60.0, "min_soc": 20.0, "grid_v": 230.0,
               "p_grid": 500, "p_inv": 0, "mode": events.V2G, "setpoint": -9000, "silent": None, "ticks": 4,
               "ext": None}
    assert _drive([healthy] * 5)[0] >= 10
    # an external limit below the EV's: in force for its second, then lapsed (the run is 2 s)
    limited = dict(healthy, ext=(32000, 1000, 1))
    n, bound = _drive([limited] + [healthy] * 49)
    assert n >= 100 and 50 <= bound < n
