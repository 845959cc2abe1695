"""Scenario runner: plays a scenario against the controller and collects the report.

Lockstep (run_lockstep): plant, simulated devices and controller advance together
in virtual time; deterministic for a given scenario and much faster than real time.
The controller sees the site only through CAN frames, on one of two buses:
- bus="memory" (default): controller.bus.ports.memory.MemoryBus, in-process, no copies, no locks;
- bus="virtual": a python-can `virtual` channel (the devices on a can.Bus, the
  controller on a PythonCanPort), the transport of the real-time mode.
Both deliver a frame at once to every other participant, so they give the same report
(tests/test_lockstep_bus.py). The devices encode their frames with the firmware's
generated codec by default (codec="candb") or with cantools (codec="cantools"), again
with the same report.

Real time (run_realtime): the plant and devices run against the wall clock on any
python-can bus (for example a socketcand hub), and the controller is whatever is on
that bus: the in-process one on its own thread, or an external one (MicroPython).
Controller events are read from its GW_Event frames in both modes.
"""

import itertools
import os
import threading
import time
import traceback

import can

from controller.bus import candb
from controller import event_names as ev_codes
from controller.control.gateway import Gateway
from controller.bus.ports.memory import MemoryBus
from controller.bus.ports.pythoncan import PythonCanPort
from hil.dbcdb import database
from hil.invariants import Invariants
from hil.metering import HilMeter
from hil.metrics import Metrics
from hil.nodes import CODECS, SiteNodes
from hil.plant import Site
from hil.scenario import controller_config

PLANT_STEP_US = 500
# Real time: how much later than in lockstep the controller may see a device frame or the
# devices its command (python-can buses, a thread or process of its own, a shared host);
# the site invariants widen their allowances by this much (docs/scenarios.md)
REALTIME_LATENCY_S = 0.05
BUSES = ("memory", "virtual")
_channel_ids = itertools.count()
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout: paths in run.error
_INF = float("inf")


class Recorder:
    """Controller events from GW_Event frames, a sampled timeline for plots, and the CAN log."""

    def __init__(self, scenario, metrics, sample_us, log_writer=None, codec="cantools"):
        db = database()
        ev_msg = db.get_message_by_name("GW_Event")
        self.ev_id = ev_msg.frame_id
        self.ev_len = ev_msg.length
        st_msg = db.get_message_by_name("GW_Status")
        self.st_id = st_msg.frame_id
        self.st_len = st_msg.length
        if codec == "candb":
            self._decode = candb.BY_NAME["GW_Event"].decode
            self._decode_st = candb.BY_NAME["GW_Status"].decode
        else:
            self._decode = lambda data: ev_msg.decode(bytes(data), decode_choices=False)
            self._decode_st = lambda data: st_msg.decode(bytes(data), decode_choices=False)
        self.inv = None  # optional hil.invariants.Invariants: the reported operating mode
        self.metrics = metrics
        self.events = []
        self.samples = []
        self.sample_us = sample_us
        self.next_sample = 0
        self.trace = None  # optional hil.trace.Trace
        self.log = log_writer
        self.last_seq = None
        self.lost_events = 0
        self.on_event = None  # optional callable(event dict), e.g. a live log of `hil serve`

    def on_frame(self, can_id, ext, data, now_us):
        """A frame the devices received from the controller."""
        if self.log is not None:
            self.log_frame(can_id, ext, data, now_us)
        if can_id == self.ev_id and not ext and len(data) == self.ev_len:
            d = self._decode(data)
            seq = int(d["EventSeq"])
            if self.last_seq is not None and seq != (self.last_seq + 1) & 255:
                self.lost_events += 1
            self.last_seq = seq
            e = ev_codes.describe(int(d["EventCode"]), int(d["EventDetail"]), int(d["EventValue"]))
            if self.inv is not None and d["EventCode"] == ev_codes.MODE_CHANGE:
                self.inv.on_mode_event(int(d["EventDetail"]), now_us / 1e6)
            e = {"t_s": round(now_us / 1e6, 6), **e}
            self.events.append(e)
            fields = {k: v for k, v in e.items() if k not in ("t_s", "kind")}
            self.metrics.on_event(e["t_s"], e["kind"], **fields)
            if self.on_event is not None:
                self.on_event(e)
        elif can_id == self.st_id and self.inv is not None and not ext and len(data) == self.st_len:
            self.inv.on_status(int(self._decode_st(data)["OperatingMode"]), now_us / 1e6)

    def log_frame(self, can_id, ext, data, now_us):
        if self.log is not None:
            m = can.Message(timestamp=now_us / 1e6, arbitration_id=can_id, data=bytes(data),
                            is_extended_id=ext, dlc=len(data), channel=0)
            self.log.on_message_received(m)

    def sample(self, now_us, site):
        """(t_s, utility-side V pu, home V pu, meter frequency, P grid, P battery, P load, soc) every
        sample_us; and the trace's row when one is due (hil/trace.py)."""
        if self.trace is not None:
            self.trace.sample(now_us, site)
        if now_us >= self.next_sample:
            self.next_sample += self.sample_us
            t = site.truth()
            self.samples.append((now_us / 1e6, t.utility_side_v_pu, t.home_v_pu, site.meter_frequency(),
                                 t.p_grid_w, t.p_batt_w, t.p_load_w, t.soc))


def _trace(sc, path):
    """A hil.trace.Trace at the scenario's meter period, or None without a path."""
    if not path:
        return None
    from hil.trace import Trace

    return Trace(path, sc["site"]["meter_period_ms"] * 1000)


def _site(sc, cfg):
    """The plant, with the site limits the controller is configured for (they count in max_over_limit_a)."""
    return Site(sc, export_limit_kw=cfg["site"]["export_limit_kw"], main_fuse_a=cfg["site"]["main_fuse_a"])


def _report(sc, metrics, rec, extra):
    report = {"scenario": sc["name"], "events": rec.events, "metrics": metrics.result(), **extra}
    if metrics.inv is not None:
        report["invariants"] = metrics.inv.result()
    return report


def _oracle(cfg, metrics, rec, nodes, latency_s=0.0):
    """The site invariants (hil/invariants.py), wired to the run's metrics, recorder and devices."""
    inv = Invariants(cfg, latency_s=latency_s)
    inv.attach(metrics, nodes)
    rec.inv = inv
    nodes.on_command = inv.on_command
    return inv


def _apply_events(sc_events, idx, t_us, site, nodes):
    while idx < len(sc_events) and sc_events[idx]["t_s"] * 1e6 <= t_us + 1e-6:
        ev = sc_events[idx]
        if not nodes.apply_event(ev, t_us):
            site.apply_event(ev)
        idx += 1
    return idx


def _supervision_due(nodes):
    """Earliest plant time at which a device's command supervision can time out."""
    due = _INF
    for rx in (nodes.rx_cmd, nodes.rx_relay):
        if rx.armed and rx.last_us + rx.timeout_us < due:
            due = rx.last_us + rx.timeout_us
    return due


def run_lockstep(sc, log_path=None, step_us=PLANT_STEP_US, sample_us=2000, bus="memory", codec="candb",
                 clock_start_us=0, errors="raise", trace_path=None, restart_at_s=()):
    """Run a validated scenario in virtual time; returns (report, recorder).

    bus: "memory" (controller.bus.ports.memory.MemoryBus) or "virtual" (python-can); codec of the
    device frames: "candb" (generated) or "cantools". The report does not depend on either.
    clock_start_us: the controller's ticks_us at plant time 0 (any value; its ticks wrap at
    2**30 us, controller/clock.py), e.g. just below a wrap. Plant times do not move.
    errors: an exception in the loop (the controller's, say) is raised with the plant time
    added as a note ("raise"), or ends the run with the report so far and `run.error`
    (t_s, type, message, where: the innermost frames) ("report", for the soak).
    trace_path: write the run's time series there (CSV, one row per meter period: hil/trace.py).
    restart_at_s: plant times at which the controller loses power and starts again: a new
    Gateway, and its meter from what the meter's medium holds (hil/metering.py).
    With metering on (the default), the report has "metering" and the recorder `meter`.
    """
    if bus not in BUSES:
        raise ValueError("bus must be one of %s" % (BUSES,))
    if codec not in CODECS:
        raise ValueError("codec must be one of %s" % (CODECS,))
    cfg = controller_config(sc)
    period_us = cfg["control"]["period_ms"] * 1000
    plant_bus = None
    if bus == "memory":
        mem = MemoryBus()
        dev_link = mem.port(256)
        port = mem.port(256)
    else:
        channel = "hil-lockstep-%d" % next(_channel_ids)
        plant_bus = dev_link = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        port = PythonCanPort(interface="virtual", channel=channel)
    writer = can.Logger(log_path) if log_path else None
    site = _site(sc, cfg)
    nodes = SiteNodes(site, dev_link, sc, seed=sc["seed"], codec=codec)
    gw = Gateway(cfg, port)
    hm = HilMeter(cfg, gw, int(clock_start_us) & 0x3FFFFFFF) if cfg["metering"]["enabled"] else None
    gw.apply_acceptance_filter()  # as controller.main does
    restarts = sorted(int(x * 1e6) for x in restart_at_s) if hm is not None else []
    next_restart = restarts.pop(0) if restarts else _INF
    metrics = Metrics(sc, period_us / 1e6)
    rec = Recorder(sc, metrics, sample_us, writer, codec=codec)
    rec.meter = hm
    trace = rec.trace = _trace(sc, trace_path)
    nodes.on_frame = rec.on_frame
    if writer is not None:
        nodes.on_sent = rec.log_frame
    _oracle(cfg, metrics, rec, nodes)
    clock0 = int(clock_start_us)
    sc_events = sc["events"]
    ev_times = [e["t_s"] * 1e6 for e in sc_events]
    n_ev = len(sc_events)
    n_steps = int(round(sc["duration_s"] * 1e6 / step_us))
    step_s = step_us / 1e6
    # hot loop: bound methods and attributes in locals
    site_step = site.step
    truth = site.truth()
    update = metrics.update
    transmit = nodes.transmit
    receive = nodes.receive
    poll = gw.poll
    tick = gw.tick
    next_tick = 0
    idx = 0
    next_ev = ev_times[0] - 1e-6 if n_ev else _INF  # applied when t_us + 1e-6 >= the event's time
    supervise_at = _INF
    next_sample = 0
    # Until `horizon` nothing but the plant and the metrics has anything to do (no event, no
    # frame due, no tick, no sample, no supervision deadline), unless the plant raises `notify`.
    horizon = 0
    wall = time.perf_counter()
    t_us = 0
    error = None
    try:
        for k in range(n_steps + 1):
            t_us = k * step_us
            if t_us < horizon:
                site_step(step_s)
                if not site.notify:
                    update(t_us / 1e6, step_s, truth)
                    continue
            else:
                if t_us >= next_ev:
                    idx = _apply_events(sc_events, idx, t_us, site, nodes)
                    next_ev = ev_times[idx] - 1e-6 if idx < n_ev else _INF
                if k:
                    site_step(step_s)
            now = (t_us + clock0) & 0x3FFFFFFF
            if t_us >= next_restart:  # a power cut of the controller: RAM lost, the meter's medium kept
                gw = Gateway(cfg, port)
                hm.restart(gw, now)
                gw.apply_acceptance_filter()
                poll, tick = gw.poll, gw.tick
                next_restart = restarts.pop(0) if restarts else _INF
            gw_sent = gw.sent
            if t_us >= nodes.next_due_us or site.notify:
                sent = nodes.frames_sent
                transmit(t_us)
                if nodes.frames_sent != sent:  # delivered at once: nothing new, nothing to poll
                    poll(now)
            if t_us >= next_tick:
                tick(now)
                next_tick += period_us
            if gw.sent != gw_sent:
                receive(t_us)
                supervise_at = _supervision_due(nodes)
            elif t_us > supervise_at:
                receive(t_us, poll=False)
                supervise_at = _supervision_due(nodes)
            update(t_us / 1e6, step_s, truth)
            if t_us >= next_sample:
                rec.sample(t_us, site)
                next_sample = rec.next_sample if trace is None else min(rec.next_sample, trace.next_us)
            horizon = min(nodes.next_due_us, next_tick, next_ev, next_sample, supervise_at + 1e-3, next_restart)
    except Exception as exc:
        if errors != "report":
            exc.add_note("hil.runner: at plant time %.6f s" % (t_us / 1e6))
            raise
        error = {"t_s": round(t_us / 1e6, 6), "type": type(exc).__name__, "message": str(exc),
                 "where": ["%s:%d %s" % (os.path.relpath(f.filename, _ROOT), f.lineno, f.name)
                           for f in traceback.extract_tb(exc.__traceback__)[-6:]]}
    finally:
        wall = time.perf_counter() - wall
        if plant_bus is not None:
            plant_bus.shutdown()
        port.close()
        if writer is not None:
            writer.stop()
        if trace is not None:
            trace.close()
    extra = {"run": {"mode": "lockstep", "plant_step_us": step_us, "control_period_ms": cfg["control"]["period_ms"],
                     "bus": bus, "codec": codec, "clock_start_us": clock0 & 0x3FFFFFFF,
                     "wall_s": round(wall, 3), "speedup": round(sc["duration_s"] / wall, 1) if wall > 0 else None,
                     "frames_refused_by_controller": gw.refused_total, "lost_controller_events": rec.lost_events}}
    if error is not None:
        extra["run"]["error"] = error
    if hm is not None:
        extra["metering"] = hm.report(metrics)
    return _report(sc, metrics, rec, extra), rec


def _wait_for_controller(bus, timeout_s, stop):
    """Block until a frame from the gateway (GW_*) appears on the bus; False on timeout."""
    gw_ids = {m.frame_id for m in database().messages if "GW" in m.senders}
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and not stop.is_set():
        msg = bus.recv(timeout=0.05)
        if msg is not None and msg.arbitration_id in gw_ids:
            return True
    return False


def run_realtime(sc, bus_factory, with_controller=True, step_us=1000, sample_us=5000, log_path=None, stop=None,
                 wait_controller_s=None, setup_controller=None, ev_on_can=True, on_event=None, trace_path=None,
                 ems_external=False):
    """Run a scenario against the wall clock on buses from bus_factory() (one per participant).

    with_controller=False leaves control to an external controller on the same bus;
    with wait_controller_s, plant time starts only when that controller's first frame
    is seen (the devices are silent until then), so a late-starting controller sees
    the whole scenario. on_event(event) is called as each controller event arrives.
    ems_external=True leaves the mode requests to another energy manager on the bus (the OCPP
    station of hil serve --ocpp): the scenario's `mode` is then not sent.
    The report's run.plant_late_max_ms says how far the plant fell behind the wall
    clock: when the host starves the process, device frames leave in bursts and the
    controller sees a site that real hardware would not show it.
    Returns (report, recorder).
    """
    cfg = controller_config(sc)
    period_us = cfg["control"]["period_ms"] * 1000
    plant_bus = bus_factory()
    site = _site(sc, cfg)
    nodes = SiteNodes(site, plant_bus, sc, seed=sc["seed"])
    nodes.ev_on_can = ev_on_can
    nodes.ems_requests = not ems_external
    metrics = Metrics(sc, period_us / 1e6)
    writer = can.Logger(log_path) if log_path else None
    rec = Recorder(sc, metrics, sample_us, writer)
    rec.trace = _trace(sc, trace_path)  # rows at the plant's steps: one per meter period, as the wall clock allows
    rec.on_event = on_event
    nodes.on_frame = rec.on_frame
    if writer is not None:
        nodes.on_sent = rec.log_frame
    # the controller runs on its own clock and thread: the invariants' allowances widen by
    # REALTIME_LATENCY_S
    _oracle(cfg, metrics, rec, nodes, latency_s=REALTIME_LATENCY_S)
    stop = stop or threading.Event()
    ctl_thread = None
    gw = None
    if with_controller:
        from controller.clock import RealClock
        from controller.runtime import run as run_controller

        port = PythonCanPort(bus=bus_factory())
        gw = Gateway(cfg, port)
        if setup_controller is not None:
            setup_controller(gw)  # extensions on the same bus, e.g. hil.ecu diagnostics
        gw.apply_acceptance_filter()  # as controller.main does, after the extensions
        ctl_thread = threading.Thread(target=run_controller, args=(gw, port, RealClock()),
                                      kwargs={"should_stop": stop.is_set}, daemon=True)
        ctl_thread.start()
    sc_events = sc["events"]
    idx = 0
    if wait_controller_s is not None and not _wait_for_controller(plant_bus, wait_controller_s, stop):
        plant_bus.shutdown()
        raise TimeoutError("no controller frame on the bus within %.1f s" % wait_controller_s)
    t0 = time.perf_counter()
    last_us = 0
    late_max = 0
    try:
        while not stop.is_set():
            t_us = int((time.perf_counter() - t0) * 1e6)
            if t_us > sc["duration_s"] * 1e6:
                break
            idx = _apply_events(sc_events, idx, t_us, site, nodes)
            # the plant integrates in fixed steps up to wall-clock time
            if t_us - last_us > late_max:
                late_max = t_us - last_us
            while last_us + step_us <= t_us:
                site.step(step_us / 1e6)
                last_us += step_us
                metrics.update(last_us / 1e6, step_us / 1e6, site.truth())
            nodes.transmit(last_us)
            nodes.receive(last_us)
            rec.sample(last_us, site)
            time.sleep(step_us / 4e6)
    finally:
        stop.set()
        if ctl_thread is not None:
            ctl_thread.join(2.0)
            gw.port.close()
        plant_bus.shutdown()
        if writer is not None:
            writer.stop()
        if rec.trace is not None:
            rec.trace.close()
    extra = {"run": {"mode": "realtime", "plant_step_us": step_us, "control_period_ms": cfg["control"]["period_ms"],
                     "controller": "in-process" if with_controller else "external",
                     "lost_controller_events": rec.lost_events, "plant_late_max_ms": round(late_max / 1000, 3)}}
    return _report(sc, metrics, rec, extra), rec
