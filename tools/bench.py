"""`v2xgw bench`: every latency budget next to its physical floor, in one run, under load.

    v2xgw bench [--json OUT] [--plot DIR] [--quick] [--n N]

Measures (times in microseconds; n, p50, p99, p99.9, max for each; docs/benchmarks.md):

- ``floor_virtual`` / ``reaction_inproc``: python-can ``virtual`` between two threads, a bare
  echo and the controller (Gateway + controller.runtime.run on a PythonCanPort in a thread)
  answering an ``EVCC_Limits`` with a lower discharge limit by a ``GW_InverterCmd`` carrying
  it (the fast path), samples interleaved in one run (tools/bench_util.latency);
- ``floor_socketcand`` (+ ``floor_socketcand_micropython``) / ``reaction_socketcand_cpython``
  / ``reaction_socketcand_micropython``: one hil.socketcand_hub.SocketcandHub on 127.0.0.1
  per interpreter, each in a process of its own (``python -m tools.bench _hub``), the bench
  on it as a python-can ``socketcand`` client, and two other processes: a bare echo on
  controller.bus.ports.socketcand.SocketcandPort (``bench_util.py echo``) and the controller
  itself (``python -m controller.main`` / ``micropython -m controller.main``). The bench
  feeds each controller the site's healthy cyclic inputs, then times trigger -> reaction
  frame; the samples of the four lanes are interleaved in one run;
- ``tick_cpython`` / ``tick_micropython`` (and ``period_*``): the tick loops of
  ``bench_util.py N raw`` under each interpreter;
- ``jitter_cpython`` / ``jitter_micropython``: lateness of each tick against its schedule
  in real-time mode (the controller as controller.main runs it on socketcand, with
  runtime.LoopStats recording every tick: ``bench_util.py jitter``); ``jitter_*_bus``: the
  same ticks seen from the bus, |interval between GW_InverterLimits frames - period|;
- ``exi_*`` / ``secc_*``: EXI encode/decode of the ISO 15118-20 test vectors (CPython and
  MicroPython) and the SECC's DC_ChargeLoopReq answer (CPython, in process), by
  measure_exi / measure_secc; "skipped" in the JSON (with the reason) while
  controller.iso15118, its vectors or hil.evcc are missing or fail;
- ``plan_192``: the energy planner (energy/plan.py) on 48-hour plans at 15-minute slots, by
  measure_plan (tools/bench_plan.py).

Conditions: as is, with background CAN traffic at 50 % and 80 % of a 500 kbit/s bus
(suffix ``_load50`` / ``_load80``) and with the other core(s) busy (``_cpu_busy``).
``--quick`` runs all measurements as is with fewer samples, plus ``_load80`` and
``_cpu_busy`` for the latency rows (floors and reactions); tick and jitter only as is.
"""

import argparse
import datetime
import gc
import json
import os
import pathlib
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from controller.bus import candb  # noqa: E402
from tools import bench_util as bu  # noqa: E402

BENCH_UTIL = str(ROOT / "tools" / "bench_util.py")
PERIOD_NS = bu.PERIOD_US * 1000
FULL_W = int(bu.SETPOINT_KW * 1000)  # the command the controller holds when nothing restricts it
CMD = candb.BY_NAME["GW_InverterCmd"]
LIMITS_ID = candb.BY_NAME["GW_InverterLimits"].frame_id  # sent by tick() only: marks a tick
CONTROLLER_CFG = {"mode": {"kind": "v2g", "setpoint_kw": bu.SETPOINT_KW},
                  "limits": {"ramp_up_kw_per_s": None}}  # as bench_util.latency: full power again each tick

# background load: an 8-byte standard frame is ~135 bits on the wire with stuffing and
# interframe space, so a share `x` of 500 kbit/s is x * 500000 / 135 frames per second
BUS_BITRATE = 500000
BITS_PER_FRAME = 135
LOAD_IDS = range(0x700, 0x800)  # not used by the site bus (dbc/)

# sample counts: reaction/floor samples per lane, tick loop rounds, jitter ticks
COUNTS = {"full": {"latency": 3000, "tick": 5000, "jitter": 2000},
          "quick": {"latency": 400, "tick": 1000, "jitter": 300}}
CONDITIONS = {
    "": "as is: nothing else on the bus or the machine than the measurement (other jobs may share the host)",
    "_load50": "background CAN traffic on every bus of the measurement: 8-byte frames, ids 0x700-0x7FF, "
               "at 50 % of 500 kbit/s (~1852 frames/s), on top of the site's own traffic",
    "_load80": "as _load50 at 80 % (~2963 frames/s)",
    "_cpu_busy": "one busy-loop process per core but one (the other core busy on a 2-core machine)",
}
# which measurement groups run under which condition
PLAN = {
    "full": [("", ("inproc", "socketcand", "jitter", "tick")),
             ("_load50", ("inproc", "socketcand", "jitter")),
             ("_load80", ("inproc", "socketcand", "jitter")),
             ("_cpu_busy", ("inproc", "socketcand", "jitter", "tick"))],
    "quick": [("", ("inproc", "socketcand", "jitter", "tick")),
              ("_load80", ("inproc", "socketcand")),
              ("_cpu_busy", ("inproc", "socketcand"))],
}
FLOOR_OF = {"reaction_inproc": "floor_virtual",
            "reaction_socketcand_cpython": "floor_socketcand",
            "reaction_socketcand_micropython": "floor_socketcand"}


class Skip(Exception):
    """A measurement that cannot run here (missing interpreter, code not written yet)."""


def micropython_path():
    here = pathlib.Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else shutil.which("micropython")


def load_fps(share):
    return share * BUS_BITRATE / BITS_PER_FRAME


def _die_with_parent():
    """In the child before exec: get SIGTERM when the bench dies, so that no controller, hub or
    busy loop outlives a killed bench (Linux prctl PR_SET_PDEATHSIG; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _popen(argv, **kw):
    return subprocess.Popen(argv, cwd=ROOT, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                            **kw)


# ---------------------------------------------------------------- machine
def _run_text(cmd, timeout=10):
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        return p.stdout.strip() if p.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(mp):
    import can

    cpu, mhz = platform.processor() or None, None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "model name" and cpu in (None, "", "x86_64"):
                    cpu = v
                elif k == "cpu MHz" and mhz is None:
                    mhz = float(v)
    except OSError:
        pass
    mp_version = None
    if mp:
        mp_version = _run_text([mp, "-c", "import sys; v = sys.implementation.version; print('%d.%d.%d%s (%s, %s)' % "
                                        "(v[0], v[1], v[2], '-' + v[3] if len(v) > 3 and v[3] else '', "
                                        "sys.version.split('; ')[-1], sys.implementation._machine))"])
    commit = _run_text(["git", "rev-parse", "HEAD"])
    dirty = _run_text(["git", "status", "--porcelain", "--untracked-files=no"])
    try:
        import matplotlib

        mpl = matplotlib.__version__
    except ImportError:
        mpl = None
    return {
        "cpu": cpu, "cpu_mhz": mhz, "nproc": os.cpu_count(),
        "os": platform.platform(), "python": "%s %s" % (platform.python_implementation(), platform.python_version()),
        "python_switchinterval_s": sys.getswitchinterval(),
        "micropython": mp_version, "python_can": can.__version__, "matplotlib": mpl,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit, "git_dirty": bool(dirty) if dirty is not None else None,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------- background: busy cores, CAN load
class CpuBusy:
    """`k` busy-loop processes (default: one per core but one) until stop()."""

    def __init__(self, k=None):
        k = max(1, (os.cpu_count() or 2) - 1) if k is None else k
        self.procs = [_popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return {"busy_processes": len(self.procs)}


def _pace(rate, send, should_stop, tick_s=0.001):
    """Call send(k) with the frames due so that `rate` frames/s go out on average; returns
    (frames sent, seconds). Wakes about every millisecond, so frames leave in bursts of
    rate/1000 (1-3 at these rates), as a busy real bus would space them anyway."""
    t0 = time.perf_counter()
    sent = 0
    while not should_stop():
        now = time.perf_counter()
        due = int((now - t0) * rate) - sent
        if due > 0:
            due = min(due, 64)  # after a stall: catch up in bounded bursts
            send(due)
            sent += due
        time.sleep(tick_s)
    return sent, time.perf_counter() - t0


class VirtualLoad:
    """Background frames on python-can `virtual` channels, from a thread of this process (the
    virtual interface exists only inside one process)."""

    def __init__(self, rate):
        self.rate = rate
        self.result = []

    def __call__(self, channels):
        import can

        stop = threading.Event()
        buses = [can.Bus(interface="virtual", channel=ch, receive_own_messages=False) for ch in channels]
        msgs = [can.Message(arbitration_id=i, is_extended_id=False, data=bytes([i & 0xFF, 0, 1, 2, 3, 4, 5, 6]))
                for i in LOAD_IDS]
        state = {"i": 0}

        def send(k):
            i = state["i"]
            for _ in range(k):
                m = msgs[i % len(msgs)]
                i += 1
                for b in buses:
                    b.send(m, timeout=0)
            state["i"] = i
            for b in buses:  # this node reads nothing: keep its receive queue empty
                while b.recv(0) is not None:
                    pass

        out = {}

        def body():
            out["sent"], out["s"] = _pace(self.rate, send, stop.is_set)

        t = threading.Thread(target=body, name="bench-virtual-load", daemon=True)
        t.start()

        def stopper():
            stop.set()
            t.join(5)
            for b in buses:
                b.shutdown()
            if out.get("s"):
                self.result.append(out["sent"] / out["s"])

        return stopper

    def achieved(self):
        return round(sum(self.result) / len(self.result)) if self.result else None


def _hub_main(argv):
    """``python -m tools.bench _hub``: a SocketcandHub on 127.0.0.1 (free port) whose CAN side is
    a python-can ``virtual`` bus, driven over stdin/stdout by the bench (one JSON line per reply):

    - first line out: ``{"port": P}``;
    - ``clients``: ``{"clients": N}`` (raw-mode clients connected);
    - ``load RATE``: start background frames on the CAN side at RATE frames/s (``{"ok": true}``);
    - ``unload``: stop them (``{"fps": achieved}``); end of input: stop everything and exit.

    The background load enters where a real socketcand's would, on the bus it bridges, so
    the hub forwards it to every client; the hub runs in its own process, as socketcand is a
    daemon of its own, so neither it nor the load shares the bench's interpreter lock.
    """
    import can

    from hil.socketcand_hub import SocketcandHub

    channel = "bench-hub-%d" % os.getpid()
    bridge = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
    hub = SocketcandHub("127.0.0.1", 0, channel="vcan0", bus=bridge).start()

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"port": hub.address[1]})
    load = stop = None
    try:
        for line in sys.stdin:
            w = line.split()
            if not w:
                continue
            if w[0] == "clients":
                with hub._lock:
                    n = sum(1 for c in hub._clients if c.state == "raw")
                reply({"clients": n})
            elif w[0] == "load":
                load = VirtualLoad(float(w[1]))
                stop = load([channel])
                reply({"ok": True})
            elif w[0] == "unload":
                if stop is not None:
                    stop()
                    stop = None
                reply({"fps": load.achieved() if load else None, "clients_dropped": hub.clients_dropped})
            else:
                reply({"error": "unknown command"})
    finally:
        if stop is not None:
            stop()
        hub.stop()
        bridge.shutdown()
    return 0


# ---------------------------------------------------------------- in-process (python-can virtual)
def measure_inproc(n, load_share):
    """floor_virtual and reaction_inproc, interleaved in one run (tools/bench_util.latency)."""
    load = VirtualLoad(load_fps(load_share)) if load_share else None
    res = bu.latency(n, "interleaved", background=load)
    gw = res["gateway"]
    limit, cmd = res["last"]
    if cmd["PSetpoint"] != -limit:
        raise AssertionError("reaction_inproc: wrong command %r for limit %d" % (cmd, limit))
    dep_e, dep_c = bu.summary(res["echo_departure"]), bu.summary(res["controller_departure"])
    extra = {
        "floor_virtual": {"departure_p50_us": dep_e["p50"], "departure_p99_us": dep_e["p99"]},
        "reaction_inproc": {"departure_p50_us": dep_c["p50"], "departure_p99_us": dep_c["p99"],
                            "ticks": res["loop"].ticks, "tick_late_max_us": res["loop"].late_max,
                            "frames_refused": gw.refused_total, "frames_filtered": gw.port.rx_filtered},
    }
    if load:
        fps = load.achieved()
        for k in extra:
            extra[k]["load_fps"] = fps
        extra["reaction_inproc"]["note"] = ("the controller's port dropped %d background frames in its "
                                            "acceptance filter (python-can virtual: no filter below the port)"
                                            % gw.port.rx_filtered)
    return {"floor_virtual": res["echo"], "reaction_inproc": res["controller"]}, extra


# ---------------------------------------------------------------- across processes (socketcand)
# the floor's echo: a trigger and an answer on ids that the controller does not read (its
# acceptance filter drops them), so that an echo and a controller can share one bus. The
# trigger is no DBC id: MTR_Energy, used before, now feeds the metering.
ECHO_TRIGGER_ID = 0x3F0
ECHO_ANSWER_ID = candb.BY_NAME["INV_DcMeasure"].frame_id


class _Hub:
    """A socketcand bus: the hub process (_hub_main), the bench's python-can socketcand client
    on it, and the processes attached to it (echo, controller)."""

    def __init__(self, name):
        from tools.canbus import open_bus

        self.name = name
        self.proc = _popen([sys.executable, "-m", "tools.bench", "_hub"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.children = []
        self.bus = None
        self.port = self._read()["port"]
        self.bus = open_bus(interface="socketcand", host="127.0.0.1", port=self.port, channel="vcan0", tcp_tune=True)
        self.tick_stamps = []  # hub time of every GW_InverterLimits (sent by tick() only)

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("hub %s exited: %s" % (self.name, self.proc.stderr.read()[-2000:]))
        return json.loads(line)

    def ask(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def attach(self, argv):
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        p = _popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.children.append(p)
        return p

    def drain(self):
        """Read everything queued (tick outputs, background load): a client that is not read
        makes the hub wait for it."""
        bus = self.bus
        while True:
            m = bus.recv(0)
            if m is None:
                return
            if m.arbitration_id == LIMITS_ID:
                self.tick_stamps.append(m.timestamp)

    def close(self):
        outs = []
        for p in self.children:
            if p.poll() is None:
                p.terminate()
            try:
                out, err = p.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            outs.append((out, err, p.returncode))
        if self.bus is not None:
            try:
                self.bus.shutdown()
            except Exception:
                pass
        try:
            self.proc.stdin.close()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        return outs


def _open_hubs(names, attach, timeout_s=15.0):
    """Start one hub per name, attach its processes (attach(name, hub) -> number of them) and
    wait until all are connected in raw mode."""
    hubs = []
    try:
        for name in names:
            hubs.append(_Hub(name))
        want = [1 + attach(name, h) for name, h in zip(names, hubs)]
        end = time.monotonic() + timeout_s
        for h, w in zip(hubs, want):
            while h.ask("clients")["clients"] < w:
                for p in h.children:
                    if p.poll() is not None:
                        raise RuntimeError("%s: a process exited (%s): %s"
                                           % (h.name, p.returncode, p.stderr.read()[-2000:]))
                if time.monotonic() > end:
                    raise RuntimeError("socketcand: not all clients of %s connected within %.0f s"
                                       % (h.name, timeout_s))
                time.sleep(0.01)
        return hubs
    except BaseException:
        for h in hubs:
            h.close()
        raise


class _Lane:
    """One measured path on a hub: a bare echo or a controller, timed from the bench's client."""

    def __init__(self, name, kind, hub, proc):
        self.name, self.kind, self.hub, self.proc = name, kind, hub, proc
        self.us, self.dep_us = [], []
        self.lost = self.resyncs = 0
        self.need_sync = kind == "ctl"
        self.enc = bu.Encoder()
        self.limit = 9000
        self.echo_payload = self.enc.frame("EVCC_Limits", bu.ROUND[5][1])[1]

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError("%s: process exited (%s): %s" % (self.name, self.proc.returncode,
                                                                 self.proc.stderr.read()[-2000:]))

    def send_round(self):
        import can

        for fid, data in self.enc.round():
            self.hub.bus.send(can.Message(arbitration_id=fid, is_extended_id=False, data=data))

    def wait_cmd(self, setpoint, timeout_s):
        end = time.monotonic() + timeout_s
        bus = self.hub.bus
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            m = bus.recv(left)
            if m is None:
                continue
            if m.arbitration_id == LIMITS_ID:
                self.hub.tick_stamps.append(m.timestamp)
            elif m.arbitration_id == bu.CMD_ID and CMD.decode(bytes(m.data))["PSetpoint"] == setpoint:
                return True

    def sample(self, deadline_s=0.25):
        """One timed round trip; False if no answer within deadline_s (counted in `lost`)."""
        import can

        bus = self.hub.bus
        self.hub.drain()
        if self.kind == "echo":
            msg = can.Message(arbitration_id=ECHO_TRIGGER_ID, is_extended_id=False, data=self.echo_payload)
            answer, want = ECHO_ANSWER_ID, None
        else:
            limit = self.limit
            self.limit -= 400 if len(self.us) & 1 else 100
            fid, data = self.enc.frame("EVCC_Limits", {"MaxChargePower": 11000, "MaxDischargePower": limit,
                                                       "MinSoc": 20.0, "SessionActive": 1, "MinSocValid": 1})
            msg = can.Message(arbitration_id=fid, is_extended_id=False, data=data)
            answer, want = bu.CMD_ID, -limit
        clock = time.perf_counter_ns
        w0 = time.time()
        t0 = clock()
        bus.send(msg)
        end = t0 + int(deadline_s * 1e9)
        while True:
            r = bus.recv(deadline_s)
            t1 = clock()
            if r is not None and r.arbitration_id == answer and (
                    want is None or CMD.decode(bytes(r.data))["PSetpoint"] == want):
                break
            if t1 > end:  # no answer in time (background frames keep recv() busy: a deadline)
                self.lost += 1
                self.need_sync = self.kind == "ctl"
                return False
        self.us.append((t1 - t0) / 1000.0)
        self.dep_us.append((r.timestamp - w0) * 1e6)  # the hub's stamp of the answer: without our wake-up
        return True


def _sync(hubs, lanes, timeout_s=5.0):
    """Feed every 10 ms until each controller commands full power (leaves its safe state)."""
    ctl_lanes = [x for x in lanes if x.kind == "ctl"]
    pending = [x for x in ctl_lanes if x.need_sync]
    end = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > end:
            for x in pending:
                x.check_alive()
            raise RuntimeError("socketcand: %s did not leave the safe state within %.0f s"
                               % ([x.name for x in pending], timeout_s))
        t = time.monotonic()
        for h in hubs:
            h.drain()
        for x in ctl_lanes:
            x.send_round()
        for x in list(pending):
            if x.wait_cmd(FULL_W, 0.002):
                x.need_sync = False
                pending.remove(x)
        d = 0.01 - (time.monotonic() - t)
        if d > 0:
            time.sleep(d)


def measure_socketcand(n, load_share, mp, cfg_path, per_lane=3, gap_s=0.0001):
    """floor_socketcand[_micropython] and reaction_socketcand_{cpython,micropython}: one hub per
    interpreter, each carrying a bare echo and a controller of that interpreter; the samples
    of all lanes interleaved within each 10 ms period, in one run."""
    py = sys.executable
    ctl_args = ["--interface", "socketcand", "--host", "127.0.0.1", "--port", "{port}", "--config", cfg_path]
    echo_args = [BENCH_UTIL, "echo", "127.0.0.1", "{port}", str(ECHO_TRIGGER_ID), str(ECHO_ANSWER_ID)]
    plan = [("cpython", py, "floor_socketcand")]
    if mp:
        plan.append(("micropython", mp, "floor_socketcand_micropython"))
    lanes = []

    def attach(name, hub):
        impl, exe, floor = [x for x in plan if x[0] == name][0]
        lanes.append(_Lane(floor, "echo", hub, hub.attach([exe] + echo_args)))
        ctl_proc = hub.attach([exe, "-m", "controller.main"] + ctl_args)
        lanes.append(_Lane("reaction_socketcand_" + impl, "ctl", hub, ctl_proc))
        return 2

    hubs = _open_hubs([x[0] for x in plan], attach)
    ctl = [x for x in lanes if x.kind == "ctl"]
    rng = random.Random(15118)
    fps = []
    loaded = False
    gc.collect()
    gc.freeze()
    try:
        _sync(hubs, lanes)
        if load_share:
            for h in hubs:
                h.ask("load %f" % load_fps(load_share))
            loaded = True
            for x in ctl:  # it may have missed inputs meanwhile: see it operating again
                x.need_sync = True
            _sync(hubs, lanes)
        period = 0
        while any(len(x.us) < n for x in lanes):
            for h in hubs:  # commands queued before this period's inputs do not count
                h.drain()
            for x in ctl:
                x.check_alive()
                x.send_round()
            for x in ctl:  # the period's reference: the tick that restored full power
                if not x.wait_cmd(FULL_W, 0.5):
                    x.need_sync = True
            if any(x.need_sync for x in ctl):
                for x in ctl:
                    x.resyncs += x.need_sync
                _sync(hubs, lanes)
                continue
            ref = time.perf_counter_ns()
            for x in ctl:
                x.limit = 9000
            order = [x for x in lanes if len(x.us) < n]
            k = period % len(order)
            order = order[k:] + order[:k]  # who goes first rotates per period
            kinds = [x for _ in range(per_lane) for x in order]
            step = PERIOD_NS // len(kinds)
            shift = int(rng.random() * step)
            for i, x in enumerate(kinds):
                if len(x.us) >= n:
                    continue
                d = (ref + shift + i * step - time.perf_counter_ns()) / 1e9
                time.sleep(d if d > gap_s else gap_s)
                for h in hubs:  # keep every hub flowing: a client that is not read stalls its hub
                    if h is not x.hub:
                        h.drain()
                if not x.sample() and x.kind == "ctl":
                    break  # resync before the next period
            period += 1
        if loaded:
            fps = [h.ask("unload")["fps"] for h in hubs]
    finally:
        gc.unfreeze()
        for h in hubs:
            h.close()
    samples, extra = {}, {}
    for x in lanes:
        samples[x.name] = x.us
        dep = bu.summary(x.dep_us)
        e = {"departure_p50_us": dep.get("p50"), "departure_p99_us": dep.get("p99")}
        if x.lost or x.resyncs:
            e["lost"], e["resyncs"] = x.lost, x.resyncs
        if load_share:
            e["load_fps"] = min(f for f in fps if f is not None) if any(f is not None for f in fps) else None
        extra[x.name] = e
    return samples, extra


# ---------------------------------------------------------------- tick cost and jitter
def measure_tick(n, mp):
    """tick() alone and the whole control period, under CPython and MicroPython (bench_util.py N raw)."""
    samples, extra = {}, {}
    for impl, exe in (("cpython", sys.executable), ("micropython", mp)):
        if exe is None:
            continue
        p = subprocess.run([exe, BENCH_UTIL, str(n), "raw"], cwd=ROOT, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError("bench_util.py under %s: %s" % (impl, p.stdout[-1000:] + p.stderr[-2000:]))
        r = json.loads(p.stdout.strip().splitlines()[-1])
        samples["tick_" + impl] = r["v2g_tick_raw"]
        samples["period_" + impl] = r["v2g_period_raw"]
        v2h_t, v2h_p = r["v2h_tick"], r["v2h_period"]
        extra["tick_" + impl] = {"note": "tick() alone, v2g; v2h p50/p99 %s/%s us" % (v2h_t["p50"], v2h_t["p99"])}
        extra["period_" + impl] = {"note": "7 input frames delivered + poll + tick + outputs drained, v2g (memory "
                                           "port); v2h p50/p99 %s/%s us" % (v2h_p["p50"], v2h_p["p99"])}
    return samples, extra


INPUT_PERIOD_S = bu.PERIOD_US * 1.005 / 1e6  # the site's cycle in the jitter runs (see measure_jitter)


def measure_jitter(ticks, load_share, mp, cfg_path, skip_s=0.5):
    """Tick lateness of the controller in real time (CPython and MicroPython at once, each on its
    own socketcand hub, fed the site's cyclic inputs by the bench), and the same ticks from the bus.

    The inputs come every 10.05 ms, not 10: their phase against the controller's ticks then
    sweeps the whole period every 2 s. At a fixed phase the run would show one point of the
    distribution (inputs arriving just before a tick leave a sub-millisecond wait, which the
    socketcand port rounds up to 1 ms: the tick is then always ~1 ms late)."""
    seconds = skip_s + ticks * bu.PERIOD_US / 1e6
    plan = [("jitter_cpython", sys.executable)] + ([("jitter_micropython", mp)] if mp else [])
    lanes = []

    def attach(name, hub):
        exe = dict(plan)[name]
        lanes.append(_Lane(name, "ctl", hub, hub.attach([exe, BENCH_UTIL, "jitter", "127.0.0.1", "{port}", cfg_path,
                                                         "%.2f" % seconds])))
        return 1

    hubs = _open_hubs([x[0] for x in plan], attach)
    fps = []
    outs = {}
    try:
        if load_share:
            for h in hubs:
                h.ask("load %f" % load_fps(load_share))
        t0 = time.monotonic()
        k = 0
        while any(x.proc.poll() is None for x in lanes):
            for x in lanes:
                if x.proc.poll() is None:
                    x.send_round()
            k += 1
            while True:  # read what the controllers send until the next round is due
                d = t0 + k * INPUT_PERIOD_S - time.monotonic()
                if d <= 0:
                    break
                for h in hubs:
                    h.drain()
                time.sleep(min(d, 0.002))
            if time.monotonic() - t0 > seconds + 30:
                raise RuntimeError("jitter: the controllers did not stop after %.1f s" % seconds)
        if load_share:
            fps = [h.ask("unload")["fps"] for h in hubs]
    finally:
        for x, h in zip(lanes, hubs):
            outs[x.name] = h.close()[0]
    samples, extra = {}, {}
    skip = int(skip_s * 1e6) // bu.PERIOD_US
    for x, h in zip(lanes, hubs):
        out, err, rc = outs[x.name]
        if rc != 0:
            raise RuntimeError("%s exited %s: %s" % (x.name, rc, (out + err)[-2000:]))
        r = json.loads(out.strip().splitlines()[-1])
        samples[x.name] = r["late_us"][skip:]
        st = h.tick_stamps[skip:]
        samples[x.name + "_bus"] = [abs((b - a) * 1e6 - bu.PERIOD_US) for a, b in zip(st, st[1:])]
        e = {"ticks": r["ticks"], "overruns": r["overruns"], "safe_at_end": r["safe"],
             "note": "lateness of each tick against its schedule (controller side, runtime.LoopStats)"}
        if load_share:
            e["load_fps"] = min(f for f in fps if f is not None) if any(f is not None for f in fps) else None
            e["frames_refused"] = r["refused"]
            e["frames_filtered"] = r["filtered"]
        extra[x.name] = e
        extra[x.name + "_bus"] = {"note": "|interval between successive GW_InverterLimits - 10 ms|, "
                                          "stamped by the hub when it forwarded them"}
    return samples, extra


# ---------------------------------------------------------------- ISO 15118 (when present)
EXI_VECTORS = ROOT / "tests" / "data" / "iso15118-20-vectors.jsonl"


def measure_exi(n, mp):
    """EXI encode and decode of the ISO 15118-20 test vectors (controller.iso15118.exi), per
    message, under CPython and MicroPython (``bench_util.py exi``): exi_encode_*, exi_decode_*
    and exi_roundtrip_* (encode + decode of the same message: the figure to set against the
    ~44 ms of Josev's EXIficient through a JVM). Skip when the codec or the vectors are missing."""
    try:
        import controller.iso15118.exi  # noqa: F401
    except ImportError as e:
        raise Skip("controller.iso15118.exi not importable (%s)" % e)
    if not EXI_VECTORS.exists():
        raise Skip("no test vectors at %s" % EXI_VECTORS.relative_to(ROOT))
    samples, extra = {}, {}
    for impl, exe in (("cpython", sys.executable), ("micropython", mp)):
        if exe is None:
            continue
        p = subprocess.run([exe, BENCH_UTIL, "exi", str(EXI_VECTORS), str(n)], cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
        if p.returncode != 0:
            raise Skip("exi under %s failed: %s" % (impl, (p.stdout + p.stderr).strip()[-300:]))
        r = json.loads(p.stdout.strip().splitlines()[-1])
        enc, dec, names = r["encode"], r["decode"], r["names"]
        samples["exi_encode_" + impl] = enc
        samples["exi_decode_" + impl] = dec
        samples["exi_roundtrip_" + impl] = [a + b for a, b in zip(enc, dec)]
        by = {}
        for i, (a, b) in enumerate(zip(enc, dec)):
            by.setdefault(names[i % len(names)], []).append(a + b)
        slow = sorted(((bu.summary(v)["p50"], k) for k, v in by.items()), reverse=True)[:3]
        note = "%d vectors, %d message types; slowest encode+decode p50: %s" % (
            len(names), len(by), ", ".join("%s %.0f us" % (k, p50) for p50, k in slow))
        if r["mismatch"]:
            note += "; %d encodings differ from the vector" % r["mismatch"]
        for k in ("encode", "decode", "roundtrip"):
            extra["exi_%s_%s" % (k, impl)] = {"note": note}
    return samples, extra


def measure_secc(n, mp):
    """The SECC's answer to DC_ChargeLoopReq (ISO 15118-20 allows 250 ms; target p99 <= 5 ms):
    one DC session of hil.evcc.Evcc against controller.iso15118.secc with n charge loops,
    in process under CPython; each sample is Connection.data_received() of the framed EXI
    request until the framed EXI response is out (V2GTP + decode + SECC + encode; no TCP)."""
    try:
        from controller.clock import RealClock
        from controller.iso15118 import exi, v2gtp
        from controller.iso15118.secc import BasicEvse, Connection, Secc
        from hil.evcc import Evcc, SessionFailed
    except ImportError as e:
        raise Skip("controller.iso15118.secc or hil.evcc not importable (%s)" % e)
    us = []
    try:
        secc = Secc(BasicEvse(), {"energy": "DC"})
        conn = Connection(secc, exi)
        clock = RealClock()
        conn.connection_made(clock.ticks_us())
        parser = v2gtp.Parser()
        clk = time.perf_counter_ns

        def exchange(ns, msg):
            req = v2gtp.frame(v2gtp.TYPE_OF_NS[ns], exi.encode(ns, msg))
            t0 = clk()
            out = conn.data_received(req, clock.ticks_us())
            t1 = clk()
            if "DC_ChargeLoopReq" in msg:
                us.append((t1 - t0) / 1000.0)
            for ptype, payload in parser.feed(out):
                rns = v2gtp.NS_OF_TYPE[ptype]
                return rns, exi.decode(rns, payload)
            raise SessionFailed("no response to %s" % list(msg))

        gc.collect()
        Evcc(energy="DC", loops=n).run(exchange)
    except Exception as e:  # the protocol code is young: a failing session is reported, not fatal
        raise Skip("secc: the DC session failed (%s: %s)" % (type(e).__name__, e))
    return {"secc_dc_charge_loop_cpython": us}, {"secc_dc_charge_loop_cpython": {
        "note": "DC_ChargeLoopReq framed EXI in -> framed EXI response out, in process (no TCP); budget 250 ms"}}


# ---------------------------------------------------------------- the planner


def measure_plan(n, mp):
    """energy/plan.py on realistic 48-hour plans at 15-minute slots (192 slots, DK1 prices;
    tools/bench_plan.py), at most 500 plans: each sample is the plan's own solve_ms
    (validation + model + HiGHS + output). Budget: 50 ms p99 (issue 11)."""
    try:
        from tools import bench_plan

        res, ms = bench_plan.measure(min(n, 500))
    except (ImportError, OSError) as e:
        raise Skip("planner not measurable (%s)" % e)
    return {"plan_192": [x * 1000.0 for x in ms]}, {"plan_192": {
        "note": "least-cost plan, 192 x 15-min slots, HiGHS (highspy); %d of %d needed the MILP, %d had a "
                "shortfall; budget 50 ms p99" % (res["milp"], res["n"], res["with_shortfall"])}}


# ---------------------------------------------------------------- the run
def entry(values):
    s = bu.summary(values)
    if not s["n"]:
        return {"n": 0}
    return {"n": s["n"], "p50_us": s["p50"], "p99_us": s["p99"], "p999_us": s["p99.9"], "max_us": s["max"],
            "mean_us": s["mean"]}


def run_bench(quick=False, n=None, log=print):
    """Run every measurement; returns (document, samples by result key)."""
    mode = "quick" if quick else "full"
    counts = dict(COUNTS[mode])
    if n is not None:
        counts = {"latency": n, "tick": n, "jitter": n}
    mp = micropython_path()
    doc = {"machine": machine_info(mp), "results": {}, "run": {"mode": mode, "counts": counts},
           "conditions": {}, "skipped": {}, "failed": {}}
    samples = {}
    results = doc["results"]
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="v2xgw-bench-")
    cfg_path = os.path.join(tmp, "controller.json")
    with open(cfg_path, "w") as f:
        json.dump(CONTROLLER_CFG, f)
    if mp is None:
        for k in ("floor_socketcand_micropython", "reaction_socketcand_micropython", "tick_micropython",
                  "jitter_micropython", "exi_*_micropython"):
            doc["skipped"][k] = "micropython not found (pip install '.[test]')"
    try:
        for suffix, groups in PLAN[mode]:
            doc["conditions"][suffix or "(none)"] = CONDITIONS[suffix]
            share = {"_load50": 0.5, "_load80": 0.8}.get(suffix)
            busy = CpuBusy() if suffix == "_cpu_busy" else None
            try:
                for g in groups:
                    t0 = time.monotonic()
                    log("bench: %-10s %-10s ..." % (g, suffix or "as is"))
                    try:
                        if g == "inproc":
                            s, e = measure_inproc(counts["latency"], share)
                        elif g == "socketcand":
                            s, e = measure_socketcand(counts["latency"], share, mp, cfg_path)
                        elif g == "jitter":
                            s, e = measure_jitter(counts["jitter"], share, mp, cfg_path)
                        else:
                            s, e = measure_tick(counts["tick"], mp)
                    except Exception as ex:  # one broken measurement must not cost the others
                        doc["failed"][g + suffix] = "%s: %s" % (type(ex).__name__, ex)
                        log("bench: %-10s %-10s FAILED: %s" % (g, suffix or "as is", doc["failed"][g + suffix]))
                        continue
                    for k, v in s.items():
                        samples[k + suffix] = v
                        results[k + suffix] = entry(v)
                        results[k + suffix].update(e.get(k, {}))
                    log("bench: %-10s %-10s %.1f s" % (g, suffix or "as is", time.monotonic() - t0))
            finally:
                if busy is not None:
                    busy.stop()
        for name, fn in (("exi", measure_exi), ("secc", measure_secc), ("plan", measure_plan)):
            log("bench: %-10s ..." % name)
            try:
                s, e = fn(counts["latency"], mp)
            except Skip as why:
                doc["skipped"][name + "_*"] = str(why)
                continue
            for k, v in s.items():
                samples[k] = v
                results[k] = entry(v)
                results[k].update(e.get(k, {}))
        log("bench: %-10s ..." % "heap")
        if mp is None:
            doc["skipped"]["heap"] = "micropython not found (pip install '.[test]')"
        else:
            try:
                doc["heap"] = measure_heap(mp, 5 if quick else 20)
            except Exception as ex:  # noqa: BLE001 - reported, the other figures stand
                doc["failed"]["heap"] = "%s: %s" % (type(ex).__name__, ex)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for key, r in results.items():
        base, suffix = _split(key)
        floor = FLOOR_OF.get(base)
        if floor and floor + suffix in results and r.get("n") and results[floor + suffix].get("n"):
            f = results[floor + suffix]
            r["floor"] = floor + suffix
            r["ratio_p50"] = round(r["p50_us"] / f["p50_us"], 2)
            r["ratio_p99"] = round(r["p99_us"] / f["p99_us"], 2)
    doc["run"]["wall_s"] = round(time.monotonic() - t_start, 1)
    return doc, samples


def measure_heap(mp, seconds):
    """The firmware's heap under MicroPython (tools/firmware_heap.py): controller/ as .mpy,
    the heap of firmware_heap.MPY_HEAP (136wK: a 32-bit board's 136 KB, word-scaled), a real-time scenario over
    socketcand; heap after import, high-water mark, bytes allocated per control period."""
    from tools import firmware_heap

    r = firmware_heap.run(heapsize=firmware_heap.MPY_HEAP, duration_s=seconds, micropython=mp)
    if r["figures"] is None:
        raise RuntimeError("the controller did not finish: " + (r["stdout"] + r["stderr"])[-1500:])
    h = dict(r["figures"])
    h["heapsize"] = firmware_heap.MPY_HEAP
    h["seconds"] = seconds
    h["note"] = ("bytes on this interpreter (64-bit unix port: pointers and GC blocks twice a 32-bit "
                 "board's); scenario ev-limit-drop, controller/ compiled to .mpy")
    return h


def _split(key):
    for suffix in ("_load50", "_load80", "_cpu_busy"):
        if key.endswith(suffix):
            return key[:-len(suffix)], suffix
    return key, ""


def table(doc):
    rows = [("measurement", "n", "p50", "p99", "p99.9", "max", "p99/floor")]
    for k, r in doc["results"].items():
        if not r.get("n"):
            rows.append((k, "0", "", "", "", "", ""))
            continue
        ratio = "%.2f" % r["ratio_p99"] if "ratio_p99" in r else ""
        rows.append((k, str(r["n"]), "%.1f" % r["p50_us"], "%.1f" % r["p99_us"], "%.1f" % r["p999_us"],
                     "%.1f" % r["max_us"], ratio))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))
        if j == 0:
            lines.append("  ".join("-" * x for x in w))
    return "\n".join(lines)


def plot(doc, samples, out_dir):
    """One histogram per measurement (<key>.png; a reaction over its floor in grey), and
    tails.png: p50/p99/p99.9 of every measurement by condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = doc["results"]
    for key, vals in samples.items():
        v = np.asarray([x for x in vals if x > 0] or [1.0], dtype=float)
        r = results[key]
        fig, ax = plt.subplots(figsize=(7, 3.6))
        floor = r.get("floor")
        lo, hi = v.min(), v.max()
        if floor and samples.get(floor):
            fv = np.asarray([x for x in samples[floor] if x > 0] or [1.0], dtype=float)
            lo, hi = min(lo, fv.min()), max(hi, fv.max())
        bins = np.logspace(np.log10(max(lo, 0.5) * 0.9), np.log10(hi * 1.1), 80)
        if floor and samples.get(floor):
            ax.hist(fv, bins=bins, color="0.75", label="%s (floor) p99 %.0f us" % (floor, results[floor]["p99_us"]))
        ax.hist(v, bins=bins, histtype="step", lw=1.5, color="C0", label="%s p99 %.0f us" % (key, r["p99_us"]))
        for q, ls in (("p50_us", ":"), ("p99_us", "--"), ("p999_us", "-.")):
            ax.axvline(r[q], color="C3", ls=ls, lw=1, label="%s %.0f us" % (q[:-3].replace("p999", "p99.9"), r[q]))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("microseconds")
        ax.set_ylabel("samples")
        m = doc["machine"]
        ax.set_title("%s  (n %d; %s, %s)" % (key, r["n"], (m.get("git_commit") or "")[:7], m["date"][:10]), fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / (key + ".png"), dpi=110)
        plt.close(fig)
    # tails by condition
    bases = []
    for key in results:
        b, _ = _split(key)
        if b not in bases and results[key].get("n"):
            bases.append(b)
    suffixes = [s for s in ("", "_load50", "_load80", "_cpu_busy") if any(b + s in results for b in bases)]
    fig, ax = plt.subplots(figsize=(max(8, len(bases) * 0.9), 4.5))
    wdt = 0.8 / len(suffixes)
    for j, s in enumerate(suffixes):
        xs = [i + j * wdt for i, b in enumerate(bases) if b + s in results]
        p99 = [results[b + s]["p99_us"] for b in bases if b + s in results]
        p50 = [results[b + s]["p50_us"] for b in bases if b + s in results]
        ax.bar(xs, p99, wdt, color="C%d" % j, alpha=0.5, label="p99 " + (s[1:] or "as is"))
        ax.scatter(xs, p50, color="C%d" % j, marker="_", s=80)
    ax.set_xticks([i + 0.4 - wdt / 2 for i in range(len(bases))])
    ax.set_xticklabels(bases, rotation=30, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("microseconds (bar: p99, tick: p50)")
    ax.legend(fontsize=7)
    ax.set_title("v2xgw bench: tails by condition", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "tails.png", dpi=110)
    plt.close(fig)


def cmd_bench(args):
    import logging

    # python-can's socketcand client warns on every frame split across two reads: not news
    logging.getLogger("can.interfaces.socketcand.socketcand").setLevel(logging.ERROR)
    t0 = time.monotonic()
    log = (lambda *a: print(*a, file=sys.stderr, flush=True))
    doc, samples = run_bench(quick=args.quick, n=args.n, log=log)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    if args.plot:
        plot(doc, samples, args.plot)
    print(table(doc))
    h = doc.get("heap")
    if h:
        print("heap (MicroPython, .mpy, -X heapsize=%s): after import %d B, high-water %d B, %d B allocated per "
              "period, %d collections, longest %d us" % (h["heapsize"], h["heap_import"], h["heap_max"],
                                                          h["alloc_per_period"], h["gc"], h["gc_max_us"]))
    for k, why in doc["skipped"].items():
        print("skipped %s: %s" % (k, why))
    for k, why in doc["failed"].items():
        print("FAILED %s: %s" % (k, why))
    m = doc["machine"]
    print("%s run: %.1f s on %s (%s cores), %s, commit %s%s" % (
        doc["run"]["mode"], time.monotonic() - t0, m["cpu"], m["nproc"], m["date"],
        (m.get("git_commit") or "?")[:7], " (dirty)" if m.get("git_dirty") else ""))
    return 1 if doc["failed"] else 0


def _positive(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1, not %s" % s)
    return v


def add_parser(subparsers):
    """Register `bench` on an argparse subparsers object (tools/cli.py)."""
    b = subparsers.add_parser("bench", help="latency budgets against their floors, under load (docs/benchmarks.md)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--json", metavar="OUT", help="write machine, results (n, p50/p99/p99.9/max in us) here")
    b.add_argument("--plot", metavar="DIR", help="write one histogram per measurement and tails.png here")
    b.add_argument("--quick", action="store_true",
                   help="fewer samples, load and busy-CPU variants of the latency rows only (< 1 min)")
    b.add_argument("--n", type=_positive, metavar="N",
                   help="samples per measurement (latency samples per lane, tick rounds, jitter ticks); for tests")
    b.set_defaults(func=cmd_bench)
    return b


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_hub":
        return _hub_main(argv[1:])
    p = argparse.ArgumentParser(prog="v2xgw")
    add_parser(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(["bench"] + list(argv))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
