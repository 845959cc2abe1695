"""Benchmark helpers for the controller: a healthy site in pre-encoded frames, the control
period loop, percentiles, the MicroPython tick loop and the reaction-latency harness.

Used by tests/test_bench_controller.py and `v2xgw bench` (tools/bench.py; see
docs/benchmarks.md). Two parts:

* MicroPython-clean (module top level, Encoder, SiteFrames, gateway(), PeriodLoop,
  percentile(), summary(), mp_main(), mp_echo(), mp_jitter(), mp_exi()):
  ``micropython tools/bench_util.py [periods] [raw]`` times the control period and
  tick() under the real interpreter and prints one JSON line of n/mean/p50/p99/p99.9/max
  in us (``python tools/bench_util.py`` does the same under CPython). The modes
  ``echo HOST PORT [TRIGGER ANSWER]`` (a bare echo on a SocketcandPort), ``jitter HOST
  PORT CFG SECONDS`` (the controller as controller.main runs it, recording the lateness
  of every tick) and ``exi VECTORS N`` (EXI encode/decode times) serve `v2xgw bench`
  under either interpreter.
* CPython only (imports inside the functions): ``latency()`` measures, between two
  threads over python-can's ``virtual`` interface, a bare echo and the controller's
  fast-path reaction (EVCC_Limits in -> GW_InverterCmd out) in the same run, optionally
  with background traffic on the channels (``background=``).
"""

import sys

try:
    from time import ticks_us, ticks_diff
except ImportError:  # CPython: plain microseconds (no wrap within a benchmark)
    from time import perf_counter_ns as _pc

    def ticks_us():
        return _pc() // 1000

    def ticks_diff(a, b):
        return a - b

if __name__ == "__main__":  # a script run from tools/: make the repository root importable
    _here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    sys.path.insert(0, _here + "/..")

from controller import config  # noqa: E402
from controller.bus import candb
from controller.bus.e2e import E2ESender  # noqa: E402
from controller.control.gateway import Gateway  # noqa: E402
from controller.bus.ports.memory import memory_pair  # noqa: E402

PERIOD_US = 10000
TICKS_MAX = (1 << 30) - 1
SETPOINT_KW = -10.0  # v2g export used by the benchmarks (battery side, W = kW * 1000)
EV_HIGH_W = 11000  # EV's announced discharge limit when nothing restricts it
CMD_ID = candb.BY_NAME["GW_InverterCmd"].frame_id
EV_LIMITS_ID = candb.BY_NAME["EVCC_Limits"].frame_id

# the cyclic inputs of one control period, as tests/firmware/sitebus.py Site.send_all()
# sends them: every input each period (the DBC sends the EV's two at 100 ms, so this
# is the upper bound: 7 frames in, where 9 of 10 real periods have 5)
ROUND = (
    ("MTR_Grid", {"GridVoltage": 230.0, "GridFrequency": 50.0}),
    ("MTR_Power", {"ActivePower": 1000}),
    ("INV_Status", {"InvModeActual": 1, "InvState": 2, "PActual": 0}),
    ("INV_AcMeasure", {"AcVoltage": 230.0, "AcFrequency": 50.0}),
    ("RLY_Feedback", {"ContactState": 1, "UtilityVoltagePresent": 1, "UtilityVoltage": 230.0}),
    ("EVCC_Limits", {"MaxChargePower": 11000, "MaxDischargePower": EV_HIGH_W, "MinSoc": 20.0,
                     "SessionActive": 1, "MinSocValid": 1}),
    ("EVCC_Status", {"Soc": 80.0, "SocValid": 1, "BatteryCapacity": 94.0, "BatteryVoltage": 390.0}),
)


class Encoder:
    """Encodes site frames through the generated codec, sealing E2E messages in sequence."""

    def __init__(self):
        self.senders = {}

    def frame(self, name, values):
        msg = candb.BY_NAME[name]
        d = {}
        for s in msg.signals:
            d[s[0]] = 0
        for k in values:
            d[k] = values[k]
        buf = bytearray(msg.length)
        msg.encode_into(d, buf)
        if msg.e2e_data_id:
            s = self.senders.get(name)
            if s is None:
                s = self.senders[name] = E2ESender(msg)
            s.seal(buf)
        return msg.frame_id, bytes(buf)

    def round(self, ev_discharge_w=EV_HIGH_W):
        out = []
        for name, values in ROUND:
            if name == "EVCC_Limits" and values["MaxDischargePower"] != ev_discharge_w:
                values = dict(values)
                values["MaxDischargePower"] = ev_discharge_w
            out.append(self.frame(name, values))
        return out


class SiteFrames:
    """Pre-encoded inputs of 16 periods (one alive-counter cycle): replaying them in order,
    again and again, is a valid in-sequence stream, so a benchmark pays no encoding."""

    def __init__(self):
        enc = Encoder()
        self.rounds = [enc.round() for _ in range(16)]


def gateway(mode="v2g", setpoint_kw=SETPOINT_KW, queue_len=64, port=None, **override):
    """A Gateway (default configuration plus `override`) on `port` or a memory pair.

    Returns (gw, site_port); site_port is None if `port` was given.
    """
    cfg = {"mode": {"kind": mode, "setpoint_kw": setpoint_kw}}
    for k in override:
        cfg[k] = override[k]
    site_port = None
    if port is None:
        port, site_port = memory_pair(queue_len)
    return Gateway(config.validate(cfg), port), site_port


class PeriodLoop:
    """One control period at a time on a memory pair: inputs in, poll, tick, outputs drained."""

    def __init__(self, mode="v2g", warmup=100, **override):
        self.gw, self.site = gateway(mode, **override)
        self.frames = SiteFrames().rounds
        self.i = 0
        self.t = 0
        self.out = 0
        for _ in range(warmup):  # past recover_hold and the ramp: a steady operating point
            self.period()

    def inputs(self):
        """Deliver the next period's input frames to the gateway's port (not polled yet)."""
        send = self.site.send
        for fid, data in self.frames[self.i]:
            send(fid, data)
        self.i = (self.i + 1) & 15

    def drain(self):
        recv = self.site.recv
        n = 0
        while recv() is not None:
            n += 1
        self.out += n
        return n

    def advance(self):
        self.t = (self.t + PERIOD_US) & TICKS_MAX
        return self.t

    def period(self):
        self.inputs()
        t = self.advance()
        self.gw.poll(t)
        self.gw.tick(t)
        self.drain()

    def prepare_tick(self):
        """Everything of a period except tick(): for timing tick() alone."""
        self.drain()
        self.inputs()
        t = self.advance()
        self.gw.poll(t)
        return t


def percentile(sorted_values, q):
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    n = len(sorted_values)
    if n == 0:
        return None
    q10 = int(q * 10 + 0.5)  # in tenths of a percent: integer arithmetic, no float rounding
    k = (q10 * n + 999) // 1000  # ceil(q * n / 100)
    if k < 1:
        k = 1
    if k > n:
        k = n
    return sorted_values[k - 1]


def summary(values_us):
    """n, mean, p50, p99, p99.9, max of a list of microsecond figures (rounded to 0.1 us)."""
    v = sorted(values_us)
    n = len(v)
    out = {"n": n}
    if not n:
        return out
    out["mean"] = round(sum(v) / n, 1)
    out["p50"] = round(percentile(v, 50), 1)
    out["p99"] = round(percentile(v, 99), 1)
    out["p99.9"] = round(percentile(v, 99.9), 1)
    out["max"] = round(v[-1], 1)
    return out


def by_phase(phase_us, values_us, bin_us=1000):
    """[(bin start in ms, n, p50, p99)] of values grouped by phase: us after the tick,
    modulo the control period."""
    bins = {}
    for ph, v in zip(phase_us, values_us):
        bins.setdefault(int((ph % PERIOD_US) // bin_us), []).append(v)
    out = []
    for k in sorted(bins):
        s = summary(bins[k])
        out.append((k * bin_us // 1000, s["n"], s["p50"], s["p99"]))
    return out


# ------------------------------------------------------------------ MicroPython tick loop
def mp_main(argv):
    """``bench_util.py [N] [raw]``: time N control periods with time.ticks_us; print one JSON
    line of summaries. ``bench_util.py echo HOST PORT`` and ``bench_util.py jitter HOST PORT
    CFG SECONDS``: the socketcand helpers of `v2xgw bench` (mp_echo, mp_jitter);
    ``bench_util.py exi VECTORS N``: EXI encode/decode times (mp_exi).

    ``period``: inputs delivered + poll + tick + outputs drained; ``tick``: tick() alone
    (inputs, poll and drain outside the timed span). Both in v2g and v2h. With ``raw``,
    the v2g samples themselves too (``v2g_period_raw``, ``v2g_tick_raw``), for histograms.
    """
    import gc
    import json

    if len(argv) > 1 and argv[1] == "echo":
        ids = (int(argv[4]), int(argv[5])) if len(argv) > 5 else (EV_LIMITS_ID, CMD_ID)
        return mp_echo(argv[2], int(argv[3]), ids[0], ids[1])
    if len(argv) > 1 and argv[1] == "jitter":
        return mp_jitter(argv[2], int(argv[3]), argv[4], float(argv[5]))
    if len(argv) > 1 and argv[1] == "exi":
        return mp_exi(argv[2], int(argv[3]))
    n = int(argv[1]) if len(argv) > 1 else 2000
    raw = len(argv) > 2 and argv[2] == "raw"
    result = {"impl": sys.implementation.name, "ticks": n}
    for mode in ("v2g", "v2h"):
        loop = PeriodLoop(mode)
        per = []
        tick = []
        gc.collect()
        for _ in range(n):
            t0 = ticks_us()
            loop.period()
            per.append(ticks_diff(ticks_us(), t0))
        for _ in range(n):
            t = loop.prepare_tick()
            t0 = ticks_us()
            loop.gw.tick(t)
            tick.append(ticks_diff(ticks_us(), t0))
        assert not loop.gw.safe
        result[mode + "_period"] = summary(per)
        result[mode + "_tick"] = summary(tick)
        if raw and mode == "v2g":
            result["v2g_period_raw"] = per
            result["v2g_tick_raw"] = tick
    print(json.dumps(result))
    return 0


# ------------------------------------------------------------------ socketcand helpers (both interpreters)
def mp_echo(host, port, trigger_id=EV_LIMITS_ID, answer_id=CMD_ID, channel="vcan0"):
    """The bare socketcand floor: answer every frame with id `trigger_id` with one frame
    `answer_id` carrying the same bytes (other frames are read and ignored), through
    controller.bus.ports.socketcand.SocketcandPort (the port the controller uses), until the
    server closes the connection. Usage: ``bench_util.py echo HOST PORT [TRIGGER ANSWER]``."""
    from controller.bus.ports.socketcand import SocketcandPort

    p = SocketcandPort(host, port, channel)
    n = 0
    while p.connected:
        if p.wait(100):
            f = p.recv()
            if f is not None and f[0] == trigger_id and not f[1]:
                p.send(answer_id, f[2])
                n += 1
    p.close()
    print('{"impl": "%s", "echoed": %d}' % (sys.implementation.name, n))
    return 0


def mp_jitter(host, port, cfg_path, seconds, channel="vcan0"):
    """The controller as ``controller.main`` runs it (SocketcandPort, Gateway, runtime.run with
    RealClock) for `seconds`, with runtime.LoopStats replaced by a subclass that records the
    lateness of every tick against its schedule; prints one JSON line with them."""
    import json

    from controller import runtime
    from controller.clock import RealClock
    from controller.bus.ports import open_port

    base = runtime.LoopStats
    cap = int(seconds * 1000000) // PERIOD_US + 64

    class Recorder(base):
        def __init__(self):
            base.__init__(self)
            self.log = [0] * cap

        def add(self, late):
            i = self.ticks
            base.add(self, late)
            if i < cap:
                self.log[i] = late

    runtime.LoopStats = Recorder
    cfg = config.load(cfg_path)
    port = open_port({"interface": "socketcand", "host": host, "port": port, "channel": channel})
    gw = Gateway(cfg, port)
    gw.apply_acceptance_filter()  # as controller.main runs it
    stats = runtime.run(gw, port, RealClock(), duration_us=int(seconds * 1000000))
    runtime.LoopStats = base
    n = stats.ticks if stats.ticks < cap else cap
    print(json.dumps({"impl": sys.implementation.name, "ticks": stats.ticks, "late_us": stats.log[:n],
                      "late_max_us": stats.late_max, "overruns": stats.overruns, "safe": gw.safe,
                      "refused": gw.refused_total, "filtered": port.rx_filtered, "rx": port.rx_count,
                      "tx": port.tx_count}))
    port.close()
    return 0


# ------------------------------------------------------------------ latency (CPython only)
_channel_seq = [0]


def _channel(kind):
    import os

    _channel_seq[0] += 1
    return "bench-%s-%d-%d" % (kind, os.getpid(), _channel_seq[0])


class _Echo:
    """The bare floor: a thread that answers every EVCC_Limits frame on its virtual channel with
    one frame (other traffic on the channel, e.g. background load, is read and ignored)."""

    def __init__(self):
        import threading

        import can

        self.channel = _channel("echo")
        self.bus = can.Bus(interface="virtual", channel=self.channel, receive_own_messages=False)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-echo", daemon=True)
        self.thread.start()

    def _run(self):
        import can

        bus = self.bus
        while not self.stop.is_set():
            msg = bus.recv(0.05)
            if msg is not None and msg.arbitration_id == EV_LIMITS_ID:
                bus.send(can.Message(arbitration_id=CMD_ID, is_extended_id=False, data=msg.data), timeout=0)

    def close(self):
        self.stop.set()
        self.thread.join(2.0)
        self.bus.shutdown()


class _Controller:
    """The controller under test: controller.runtime.run() on a PythonCanPort in its own thread."""

    def __init__(self, override):
        import threading

        from controller.clock import RealClock
        from controller.bus.ports.pythoncan import PythonCanPort
        from controller.runtime import run

        self.channel = _channel("ctl")
        self.port = PythonCanPort(interface="virtual", channel=self.channel)
        self.gw, _ = gateway("v2g", SETPOINT_KW, port=self.port, **override)
        self.gw.apply_acceptance_filter()  # as controller.main runs it
        self.stop = threading.Event()
        self.stats = None
        self.error = None

        def body():
            try:
                self.stats = run(self.gw, self.port, RealClock(), should_stop=self.stop.is_set)
            except BaseException as e:  # surfaced by close()
                self.error = e

        self.thread = threading.Thread(target=body, name="bench-controller", daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.thread.join(2.0)
        self.port.close()
        if self.error is not None:
            raise self.error


class _Driver:
    """Thread A: the site and the stopwatch (the test's own thread).

    Each control period it sends the cyclic inputs (the EV discharge limit back at
    EV_HIGH_W) and waits for the tick that restores full power; that instant is the
    period's reference. Then it takes its samples at evenly spaced offsets over one
    period with a random shift, so they fall uniformly on every phase of the tick cycle
    (a wake-up costs differently just before a tick than just after it). A controller
    sample is an EVCC_Limits frame with a discharge limit lower than the one before
    (alternately 100 W and 400 W steps down from 9 kW), timed with perf_counter_ns from
    the send to the receipt of the GW_InverterCmd carrying exactly the new limit; an
    echo sample is one frame to the echo thread and its answer. At least `gap_s` passes
    between samples, so the receiving thread is asleep again, as it is for a real frame.
    """

    def __init__(self, ctl_channel, echo_channel, gap_s, per_period):
        import random

        import can

        self.can = can
        self.rng = random.Random(15118)
        self.gap_s = gap_s
        self.per_period = per_period
        self.enc = Encoder()
        self.ctl = None if ctl_channel is None else can.Bus(
            interface="virtual", channel=ctl_channel, receive_own_messages=False)
        self.echo = None if echo_channel is None else can.Bus(
            interface="virtual", channel=echo_channel, receive_own_messages=False)
        self.ctl_us = []
        self.ctl_phase_us = []  # offset of each controller sample after the period's reference
        self.echo_us = []
        # departure: from the trigger's send to the moment the answering thread handed its
        # frame to the bus (the virtual bus stamps time.time() on send), i.e. the round trip
        # without the wake-up of the thread that receives the answer
        self.ctl_dep_us = []
        self.echo_dep_us = []
        self.cmd = candb.BY_NAME["GW_InverterCmd"]
        self.last_ok = None  # (limit, decoded command) of the last controller sample
        self.echo_payload = self.enc.frame("EVCC_Limits", ROUND[5][1])[1]

    def close(self):
        for b in (self.ctl, self.echo):
            if b is not None:
                b.shutdown()

    def _send_round(self, ev_discharge_w=EV_HIGH_W):
        can = self.can
        for fid, data in self.enc.round(ev_discharge_w):
            self.ctl.send(can.Message(arbitration_id=fid, is_extended_id=False, data=data), timeout=0)

    def _wait_cmd(self, setpoint, timeout_s):
        """Read the controller's frames until a GW_InverterCmd with PSetpoint == setpoint."""
        import time

        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            m = self.ctl.recv(left)
            if m is not None and m.arbitration_id == CMD_ID:
                d = self.cmd.decode(bytes(m.data))
                if d["PSetpoint"] == setpoint:
                    return d

    def warm_up(self, timeout_s=5.0):
        """Feed healthy inputs every 10 ms until the controller commands full power."""
        import time

        full = int(SETPOINT_KW * 1000)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            self._send_round()
            if self._wait_cmd(full, 0.01) is not None:
                return True
        return False

    @staticmethod
    def _drain(bus):
        """Read what is already queued (tick outputs, background load): not part of a sample."""
        while bus.recv(0) is not None:
            pass

    def sample_echo(self):
        import time

        can = self.can
        msg = can.Message(arbitration_id=EV_LIMITS_ID, is_extended_id=False, data=self.echo_payload)
        clock = time.perf_counter_ns
        bus = self.echo
        self._drain(bus)
        w0 = time.time()
        t0 = clock()
        bus.send(msg, timeout=0)
        while True:
            r = bus.recv(1.0)
            t1 = clock()
            if r is None:
                raise AssertionError("echo: no answer within 1 s")
            if r.arbitration_id == CMD_ID:
                break
        self.echo_us.append((t1 - t0) / 1000.0)
        self.echo_dep_us.append((r.timestamp - w0) * 1e6)

    def sample_ctl(self, limit_w):
        import time

        can = self.can
        fid, data = self.enc.frame("EVCC_Limits", {"MaxChargePower": 11000, "MaxDischargePower": limit_w,
                                                   "MinSoc": 20.0, "SessionActive": 1, "MinSocValid": 1})
        msg = can.Message(arbitration_id=fid, is_extended_id=False, data=data)
        clock = time.perf_counter_ns
        bus = self.ctl
        want = -limit_w
        self._drain(bus)
        w0 = time.time()
        t0 = clock()
        bus.send(msg, timeout=0)
        while True:
            r = bus.recv(1.0)
            t1 = clock()
            if r is None:
                raise AssertionError("controller: no GW_InverterCmd for limit %d W within 1 s" % limit_w)
            if r.arbitration_id == CMD_ID:
                d = self.cmd.decode(bytes(r.data))
                if d["PSetpoint"] == want:
                    break
        self.ctl_us.append((t1 - t0) / 1000.0)
        self.ctl_dep_us.append((r.timestamp - w0) * 1e6)
        self.last_ok = (limit_w, d)
        return t0

    def period(self, n_ctl, n_echo, ctl_first):
        """One control period: inputs, wait for the full-power tick, then the samples."""
        import time

        if self.ctl is not None:
            self._send_round()
            if self._wait_cmd(int(SETPOINT_KW * 1000), 0.5) is None:
                raise AssertionError("controller did not restore full power within 0.5 s")
        ref = time.perf_counter_ns()
        kinds = []
        for i in range(max(n_ctl, n_echo)):
            for k in (("c", "e") if ctl_first else ("e", "c")):
                if (k == "c" and i < n_ctl) or (k == "e" and i < n_echo):
                    kinds.append(k)
        if not kinds:
            return
        step = PERIOD_US * 1000 // self.per_period  # ns between samples
        shift = int(self.rng.random() * step)
        limit = 9000
        for i, k in enumerate(kinds):
            d = (ref + shift + i * step - time.perf_counter_ns()) / 1e9
            time.sleep(d if d > self.gap_s else self.gap_s)
            if k == "c":
                t0 = self.sample_ctl(limit)
                self.ctl_phase_us.append((t0 - ref) / 1000.0)
                limit -= 400 if len(self.ctl_us) & 1 else 100
            else:
                self.sample_echo()


def latency(n, mode="interleaved", gap_s=0.0001, per_period=16, override=None, background=None):
    """Round trips in microseconds: {"echo": [...], "controller": [...], ...}, plus
    "echo_departure"/"controller_departure" (see _Driver) and "phase" (us after the tick
    of each controller sample).

    mode "sequential": the echo alone first (no controller thread exists yet), then the
    controller alone; "interleaved": both threads alive, samples alternating c/e/c/e
    within each period (which kind goes first alternates per period). n samples of
    each; `per_period` samples (of both kinds together) per 10 ms period.

    `background(channels)`, if given, is called once the controller runs (in each part of
    "sequential") with the virtual channel names in use, to start background traffic on
    them (`v2xgw bench` under load); it returns a function that stops that traffic.
    """
    import gc
    import time

    override = {"limits": {"ramp_up_kw_per_s": None}} if override is None else override
    echo = ctl = drv = None
    stops = []
    # the test runner's heap is not the controller's: move it out of the collector's sight,
    # so that a collection costs what the objects allocated during the run cost
    gc.collect()
    gc.freeze()
    try:
        echo = _Echo()
        if mode == "sequential":
            drv = _Driver(None, echo.channel, gap_s, per_period)
            if background is not None:
                stops.append(background([echo.channel]))
            while len(drv.echo_us) < n:
                drv.period(0, min(per_period, n - len(drv.echo_us)), False)
            echo_us, echo_dep_us = drv.echo_us, drv.echo_dep_us
            while stops:
                stops.pop()()
            drv.close()
            echo.close()
            echo = None
            ctl = _Controller(override)
            drv = _Driver(ctl.channel, None, gap_s, per_period)
            if not drv.warm_up():
                raise AssertionError("controller did not leave the safe state")
            if background is not None:
                stops.append(background([ctl.channel]))
            while len(drv.ctl_us) < n:
                drv.period(min(per_period, n - len(drv.ctl_us)), 0, True)
            drv.echo_us, drv.echo_dep_us = echo_us, echo_dep_us
        elif mode == "interleaved":
            ctl = _Controller(override)
            drv = _Driver(ctl.channel, echo.channel, gap_s, per_period)
            if not drv.warm_up():
                raise AssertionError("controller did not leave the safe state")
            if background is not None:
                stops.append(background([ctl.channel, echo.channel]))
            first = True
            half = per_period // 2
            while len(drv.ctl_us) < n or len(drv.echo_us) < n:
                drv.period(min(half, n - len(drv.ctl_us)), min(half, n - len(drv.echo_us)), first)
                first = not first
        else:
            raise ValueError("mode: sequential or interleaved")
        while stops:
            stops.pop()()
        ctl.close()
        gw, stats = ctl.gw, ctl.stats
        ctl = None
        return {"echo": drv.echo_us, "controller": drv.ctl_us, "phase": drv.ctl_phase_us,
                "echo_departure": drv.echo_dep_us, "controller_departure": drv.ctl_dep_us,
                "last": drv.last_ok, "gateway": gw, "loop": stats}
    except AssertionError:
        if ctl is not None and ctl.error is not None:
            raise ctl.error  # the controller thread died: that is the cause, not the timeout
        raise
    finally:
        while stops:
            stops.pop()()
        for x in (drv, ctl, echo):
            if x is not None:
                try:
                    x.close()
                except Exception:
                    pass
        gc.unfreeze()



def mp_exi(path, n):
    """Time exi.encode and exi.decode (controller.iso15118.exi) on the test vectors of `path`
    (JSON lines: ns, msg, json, exi hex): about n samples of each, spread over all vectors
    (every vector, repeated, when n exceeds their number). Prints one JSON line with the
    samples in us, the message name of each and how many encodings differed from the vector.
    The file is read one line at a time (MicroPython's default heap is 2 MB)."""
    import gc
    import json
    from binascii import unhexlify

    from controller.iso15118 import exi

    # warm-up: the first use of a namespace imports its grammar tables (on MicroPython that
    # compiles a large module and needs the heap unfragmented): once per namespace, untimed
    seen = {}
    with open(path) as f:
        for line in f:
            v = json.loads(line) if line.strip() else None
            if v is not None and v["ns"] not in seen:
                seen[v["ns"]] = True
                ns, obj, data = v["ns"], v["json"], unhexlify(v["exi"])
                v = line = None
                gc.collect()
                exi.encode(ns, obj)
                exi.decode(ns, data)
    total = 0
    with open(path) as f:
        for line in f:
            if line.strip():
                total += 1
    if n < total:
        want = set(i * total // n for i in range(n))
        reps = 1
    else:
        want = None
        reps = (n + total - 1) // total
    enc = []
    dec = []
    names = []
    mismatch = 0
    for r in range(reps):
        i = 0
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                i += 1
                if want is not None and (i - 1) not in want:
                    continue
                v = json.loads(line)
                ns, obj, data = v["ns"], v["json"], unhexlify(v["exi"])
                if r == 0:
                    names.append(v["msg"])
                v = line = None
                gc.collect()
                t0 = ticks_us()
                out = exi.encode(ns, obj)
                t1 = ticks_us()
                exi.decode(ns, data)
                t2 = ticks_us()
                enc.append(ticks_diff(t1, t0))
                dec.append(ticks_diff(t2, t1))
                if r == 0 and out != data:
                    mismatch += 1
    print(json.dumps({"impl": sys.implementation.name, "encode": enc, "decode": dec, "names": names,
                      "mismatch": mismatch}))
    return 0


if __name__ == "__main__":
    sys.exit(mp_main(sys.argv))
