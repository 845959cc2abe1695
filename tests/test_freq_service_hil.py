"""Frequency-response services in the HIL: the scenario events (freq_service, grid_profile,
site.grid_impedance), the energy manager's curve frames, the service metrics, and the two
shipped scenarios end to end."""

import pathlib

import pytest

from controller.bus import candb
from controller.bus.inputs import Input
from controller.bus.ports.memory import MemoryBus
from controller.grid_support import freq_service as fs
from hil import scenario
from hil.metrics import curve_kw, service_spans
from hil.nodes import SiteNodes
from hil.runner import _site, run_lockstep
from hil.scenario import ScenarioError, controller_config
from site_truth import MetricsRun

SCEN = pathlib.Path(__file__).resolve().parent.parent / "scenarios"
FFR = {"t_s": 1.0, "kind": "freq_service", "service": "ffr", "points": [[49.5, -11.0], [49.7, 0.0]], "valid_s": 30}


def _sc(events=(), **top):
    d = {"name": "t", "duration_s": 10.0, "events": list(events)}
    d.update(top)
    return scenario.validate(d)


def _error(events=(), **top):
    with pytest.raises(ScenarioError) as e:
        _sc(events, **top)
    return e.value


# ---------------------------------------------------------------- scenario: freq_service

def test_freq_service_is_validated_with_its_defaults():
    ev = _sc([FFR])["events"][0]
    assert ev == {"t_s": 1.0, "kind": "freq_service", "service": "ffr", "points": [[49.5, -11.0], [49.7, 0.0]],
                  "baseline_kw": 0.0, "valid_s": 30}
    assert _sc([{"t_s": 2.0, "kind": "freq_service", "service": "cancel"}])["events"][0]["service"] == "cancel"


@pytest.mark.parametrize("change, key, words", [
    ({"service": "fcr"}, "events[0].service", "must be one of"),
    ({"points": [[49.5, -11.0]]}, "events[0].points", "2..8 points"),
    ({"points": [[49.0 + 0.1 * i, 0.0] for i in range(9)]}, "events[0].points", "2..8 points"),
    ({"points": [[49.7, 0.0], [49.5, -11.0]]}, "events[0].points[1][0]", "increase strictly"),
    ({"points": [[49.5, -11.0], [49.5004, 0.0]]}, "events[0].points[1][0]", "increase strictly"),
    ({"points": [[44.0, -11.0], [49.7, 0.0]]}, "events[0].points[0][0]", ">= 45"),
    ({"points": [[49.5, -33.0], [49.7, 0.0]]}, "events[0].points[0][1]", "DeltaPower"),
    ({"points": [[49.5, "x"], [49.7, 0.0]]}, "events[0].points[0][1]", "number"),
    ({"points": [[49.5], [49.7, 0.0]]}, "events[0].points[0]", "pair"),
    ({"points": "49.5"}, "events[0].points", "list"),
    ({"baseline_kw": 40.0}, "events[0].baseline_kw", "BaselinePower"),
    ({"valid_s": 0}, "events[0].valid_s", ">= 1"),
    ({"valid_s": 1.5}, "events[0].valid_s", "whole number"),
    ({"valid_s": 70000}, "events[0].valid_s", "<= 65535"),
    ({"color": "red"}, "events[0].color", "unknown key"),
])
def test_a_bad_freq_service_names_its_key(change, key, words):
    e = _error([{**FFR, **change}])
    assert e.key == key and words in e.problem, str(e)


def test_freq_service_needs_points_and_validity_and_cancel_takes_neither():
    for f in ("points", "valid_s"):
        ev = dict(FFR)
        del ev[f]
        assert _error([ev]).key == "events[0]." + f
    e = _error([{"t_s": 1.0, "kind": "freq_service", "service": "cancel", "points": FFR["points"]}])
    assert e.key == "events[0].points" and "cancel" in e.problem


# ---------------------------------------------------------------- scenario: site.grid_impedance

def test_grid_impedance_defaults_to_none_and_takes_both_parts():
    assert _sc()["site"]["grid_impedance"] is None
    assert _sc(site={"grid_impedance": None})["site"]["grid_impedance"] is None
    assert _sc(site={"grid_impedance": {"r_ohm": 0.4, "x_ohm": 0.25}})["site"]["grid_impedance"] == \
        {"r_ohm": 0.4, "x_ohm": 0.25}


@pytest.mark.parametrize("value, key, words", [
    ({"r_ohm": 0.4}, "site.grid_impedance.x_ohm", "missing"),
    ({"r_ohm": 10.5, "x_ohm": 0.0}, "site.grid_impedance.r_ohm", "<= 10"),
    ({"r_ohm": 0.1, "x_ohm": -1}, "site.grid_impedance.x_ohm", ">= 0"),
    ({"r_ohm": 0.1, "x_ohm": 0.1, "l_h": 1}, "site.grid_impedance.l_h", "unknown key"),
    (0.5, "site.grid_impedance", "object"),
])
def test_a_bad_grid_impedance_names_its_key(value, key, words):
    e = _error(site={"grid_impedance": value})
    assert e.key == key and words in e.problem, str(e)


# ---------------------------------------------------------------- scenario: grid_profile

def test_a_frequency_profile_becomes_steps_and_ramps():
    evs = _sc([{"t_s": 2.0, "kind": "grid_profile", "quantity": "frequency",
                "points": [[0.0, 50.0], [0.5, 49.5], [4.5, 49.5], [4.5, 49.8], [7.0, 50.3]]}])["events"]
    assert evs == [
        {"t_s": 2.0, "kind": "grid_frequency", "hz": 50.0},
        {"t_s": 2.0, "kind": "grid_frequency", "hz": 49.5, "ramp_hz_per_s": pytest.approx(1.0)},
        {"t_s": 6.5, "kind": "grid_frequency", "hz": 49.8},  # two points at one time: a step
        {"t_s": 6.5, "kind": "grid_frequency", "hz": 50.3, "ramp_hz_per_s": pytest.approx(0.2)},
    ]


def test_a_voltage_profile_becomes_steps_and_ramps_among_other_events():
    evs = _sc([{"t_s": 3.0, "kind": "grid_disconnect"},
               {"t_s": 1.0, "kind": "grid_profile", "quantity": "voltage", "points": [[0.5, 0.9], [2.5, 1.05]]}]
              )["events"]
    assert evs == [
        {"t_s": 1.5, "kind": "grid_voltage", "pu": 0.9},
        {"t_s": 1.5, "kind": "grid_voltage", "pu": 1.05, "ramp_s": 2.0},
        {"t_s": 3.0, "kind": "grid_disconnect"},
    ]


@pytest.mark.parametrize("change, key, words", [
    ({"quantity": "power"}, "events[0].quantity", "must be one of"),
    ({"points": []}, "events[0].points", "1..1000"),
    ({"points": [[1.0, 50.0], [0.5, 49.0]]}, "events[0].points[1][0]", "must not decrease"),
    ({"points": [[0.0, 50.0], [9.5, 49.0]]}, "events[0].points[1][0]", "<= 9.0"),  # past the duration
    ({"points": [[0.0, 50.0], [1.0, 71.0]]}, "events[0].points[1][1]", "<= 70"),
    ({"points": [[0.0, 50.0], [8.0, 50.004]]}, "events[0].points[1]", "Hz/s"),  # slower than the plant ramps
    ({"points": [[0.0, 50.0], [0.001, 49.0]]}, "events[0].points[1]", "Hz/s"),
])
def test_a_bad_grid_profile_names_its_key(change, key, words):
    ev = {"t_s": 1.0, "kind": "grid_profile", "quantity": "frequency", "points": [[0.0, 50.0], [1.0, 49.5]]}
    e = _error([{**ev, **change}])
    assert e.key == key and words in e.problem, str(e)


def test_a_voltage_profile_is_bounded_in_pu():
    e = _error([{"t_s": 1.0, "kind": "grid_profile", "quantity": "voltage", "points": [[0.0, 2.5]]}])
    assert e.key == "events[0].points[0][1]" and "<= 2.0" in e.problem


# ---------------------------------------------------------------- the energy manager's frames

class _Gw:
    """The firmware's side of the curve frames: its receive checks (E2E, range) and the assembler."""

    def __init__(self):
        self.svc = fs.FrequencyService()
        self.asm = fs.CurveAssembler(self.svc)
        self.hdr = Input(candb.BY_NAME["EMS_FreqServiceHdr"], 0)
        self.pt = Input(candb.BY_NAME["EMS_FreqServicePoint"], 0)
        self.headers = []

    def take(self, port, now):
        while True:
            f = port.recv()
            if f is None:
                return
            can_id, _, data = f
            if can_id == self.hdr.msg.frame_id:
                assert self.hdr.accept(data, now) == 0
                v = self.hdr.values
                self.headers.append(dict(v))
                self.asm.on_header(v["Kind"], v["CurveId"], v["NumPoints"], v["BaselinePower"], v["ValidFor"], now)
            elif can_id == self.pt.msg.frame_id:
                assert self.pt.accept(data, now) == 0
                v = self.pt.values
                self.asm.on_point(v["CurveId"], v["Index"], v["Frequency"], v["DeltaPower"], now)


def _nodes(events, duration=10.0):
    sc = _sc(events, duration_s=duration)
    bus = MemoryBus()
    dev = bus.port(256)
    gw_port = bus.port(256)
    nodes = SiteNodes(_site(sc, controller_config(sc)), dev, sc, codec="cantools")
    return sc, nodes, gw_port


def _play(sc, nodes, port, gw, until_s, step_us=10000, t_us=0):
    evs = list(sc["events"])
    while t_us <= until_s * 1e6:
        while evs and evs[0]["t_s"] * 1e6 <= t_us:
            nodes.apply_event(evs.pop(0), t_us)
        nodes.transmit(t_us)
        gw.take(port, t_us)
        t_us += step_us
    return t_us


def test_the_energy_manager_sends_the_curve_with_e2e_and_the_gateway_side_loads_it():
    ev = {**FFR, "baseline_kw": 2.0, "points": [[49.5, -11.0], [49.7, 0.0], [50.3, 4.0]]}
    sc, nodes, port = _nodes([ev])
    gw = _Gw()
    _play(sc, nodes, port, gw, 1.5)
    assert gw.asm.loaded == 1 and gw.asm.refused == 0
    assert gw.headers[0] == {"Kind": fs.KIND_FFR, "CurveId": 1, "NumPoints": 3, "BaselinePower": 2000,
                             "ValidFor": 30, "AliveCounter": 0, "Crc": gw.headers[0]["Crc"]}
    s = gw.svc
    assert s.kind == fs.KIND_FFR and s.valid_s == 30
    # generator convention in the unit: the baseline charges 2 kW, 49.5 Hz exports 9 kW
    assert s.update(49.5, 80.0, 20.0, 60.0, -11000, 11000, 1600000) == 9000
    assert s.update(49.7, 80.0, 20.0, 60.0, -11000, 11000, 1610000) == -2000
    assert s.update(50.6, 80.0, 20.0, 60.0, -11000, 11000, 1620000) == -6000


def test_the_set_is_repeated_each_second_with_the_validity_that_remains_and_cancel_goes_once():
    sc, nodes, port = _nodes([{**FFR, "valid_s": 3}, {"t_s": 6.0, "kind": "freq_service", "service": "ffr",
                                                      "points": FFR["points"], "valid_s": 20},
                              {"t_s": 7.5, "kind": "freq_service", "service": "cancel"}])
    gw = _Gw()
    _play(sc, nodes, port, gw, 9.9)
    valid = [(h["CurveId"], h["NumPoints"], h["ValidFor"]) for h in gw.headers]
    # 1 s: 3 s valid, then 2 and 1 at 2 s and 3 s; none at 4 s (expired); a new curve (a new id) at
    # 6 s and 7 s; the cancel at 7.5 s once and nothing after it
    assert valid == [(1, 2, 3), (1, 2, 2), (1, 2, 1), (2, 2, 20), (2, 2, 19), (2, 0, 1)]
    assert gw.asm.loaded == 5 and gw.asm.cancels == 1 and gw.asm.refused == 0
    assert not gw.svc.in_force


def test_a_silent_energy_manager_sends_no_curve():
    sc, nodes, port = _nodes([{"t_s": 0.5, "kind": "can_silence", "node": "ems", "duration_s": 1.2}, FFR])
    gw = _Gw()
    _play(sc, nodes, port, gw, 2.5)
    # nothing while silent (until 1.7 s); the repetition at 2 s repairs it, with the validity left
    assert [h["ValidFor"] for h in gw.headers] == [29] and gw.svc.in_force


# ---------------------------------------------------------------- metrics

DT = 0.0005


def _Run(events):
    return MetricsRun(_sc(events), DT)


def test_curve_and_spans_of_the_metrics():
    pts = [[49.5, -11.0], [49.7, 0.0]]
    assert curve_kw(49.6, pts) == pytest.approx(-5.5) and curve_kw(49.0, pts) == -11.0 and curve_kw(50.0, pts) == 0.0
    sc = _sc([{**FFR, "valid_s": 5}, {**FFR, "t_s": 3.0, "baseline_kw": 1.0},
              {"t_s": 4.0, "kind": "freq_service", "service": "cancel"}])
    assert service_spans(sc) == [(1.0, 3.0, pts, 0.0), (3.0, 4.0, pts, 1000.0)]


def test_no_service_no_service_metrics():
    r = _Run([]).run(0.5).result
    assert r["service_activation_s"] is None and r["service_energy_kwh"] is None


def test_activation_time_from_leaving_the_band_to_90_percent():
    tr = _Run([FFR]).run(2.0)
    tr.run(0.2, grid_f_hz=49.6)  # out of the band at 2.0 s (the first sample after it: 2.0005): -5.5 kW asked
    tr.run(0.1, p_ac_w=-4900.0)  # 89 %: not yet
    tr.run(0.3, p_ac_w=-4950.0)  # 90 % at 2.3 s
    r = tr.result
    assert r["service_activation_s"] == pytest.approx(0.3, abs=DT)


def test_activation_follows_the_curve_at_each_frequency():
    tr = _Run([FFR]).run(2.0)
    tr.run(0.1, grid_f_hz=49.69, p_ac_w=0.0)  # -550 W asked
    tr.run(0.1, grid_f_hz=49.5, p_ac_w=-600.0)  # now -11 kW asked: 600 W is not 90 % of it
    tr.run(0.5, p_ac_w=-10000.0)
    assert tr.result["service_activation_s"] == pytest.approx(0.2, abs=DT)


def test_a_wrong_direction_or_a_return_before_90_percent_is_no_activation():
    tr = _Run([FFR]).run(2.0)
    tr.run(0.5, grid_f_hz=49.5, p_ac_w=11000.0)  # charging when export is asked
    tr.run(0.5, grid_f_hz=50.0, p_ac_w=0.0)
    tr.run(0.5, grid_f_hz=49.5, p_ac_w=-11000.0)  # a later departure does not count
    assert tr.result["service_activation_s"] is None


def test_a_departure_before_the_service_starts_counts_from_its_start():
    tr = _Run([FFR]).run(0.5, grid_f_hz=49.5)
    tr.run(0.7, p_ac_w=-10000.0)  # the service starts at 1.0 s
    assert tr.result["service_activation_s"] == pytest.approx(0.0, abs=DT)


def test_service_energy_against_the_baseline_while_in_force():
    tr = _Run([{**FFR, "baseline_kw": 2.0, "valid_s": 4}])
    tr.run(1.0, p_ac_w=-8000.0)  # before the service: not counted
    tr.run(2.0, p_ac_w=-7000.0)  # 9 kW below the 2 kW baseline for 2 s
    tr.run(2.0, p_ac_w=5000.0)  # 3 kW above it for 2 s (the service ends at 5 s)
    tr.run(1.0, p_ac_w=-8000.0)  # after it: not counted
    assert tr.result["service_energy_kwh"] == pytest.approx((-9000.0 * 2 + 3000.0 * 2) / 3.6e6, rel=1e-4)


# ---------------------------------------------------------------- the shipped scenarios, end to end

def test_ffr_frequency_dip_activates_in_time_and_delivers():
    report, rec = run_lockstep(scenario.load(SCEN / "ffr-frequency-dip.json"))
    m = report["metrics"]
    assert m["trip_count"] == 0 and m["invariant_violations"] == 0 and m["max_over_limit_a"] == 0.0
    # FFR at a 49.5 Hz activation level: full activation within 0.7 s
    assert m["service_activation_s"] is not None and m["service_activation_s"] <= 0.7
    # 4 s at 11 kW plus the ramps (0.2 s down from 49.7 Hz, 1.0 s back up to it at half the power on
    # average): 14.1 Wh asked at the AC side; the EV's 11 kW limit is on the battery side, so with the
    # inverter's 97 % the AC side may give 3 % less
    assert -0.0145 < m["service_energy_kwh"] < -0.013
    # the EV exports at its full 11 kW while the frequency is at 49.5 Hz, and not before the dip
    assert min(s[5] for s in rec.samples if 3.0 <= s[0] <= 6.5) < -10500.0
    assert all(abs(s[5]) < 50.0 for s in rec.samples if 0.5 <= s[0] <= 2.0)


def test_fcr_d_stops_at_the_reserve():
    sc = scenario.load(SCEN / "fcr-d-reserve.json")
    assert sc["controller"]["backup"]["reserve_soc_pct"] == 30.0
    report, rec = run_lockstep(sc)
    m = report["metrics"]
    assert m["trip_count"] == 0 and m["invariant_violations"] == 0
    assert m["service_activation_s"] is not None and m["service_activation_s"] <= 7.5  # 2023 FCR-D: 86 % in 7.5 s
    # the energy above the 30 % reserve is 0.3 % of 10 kWh = 30 Wh (battery side); the site gives no more
    assert -0.031 < m["service_energy_kwh"] < -0.02
    assert 0.2995 <= m["ev_soc_end"] <= 0.301  # the EV reports its SoC in steps of 0.1 %
    assert all(abs(s[5]) < 50.0 for s in rec.samples if s[0] >= 25.0)  # stopped while the frequency is still low
