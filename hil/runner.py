"""Scenario runner: plays a scenario against the controller and collects the report.

Lockstep (run_lockstep): plant, simulated devices and controller advance together
in virtual time on one python-can `virtual` channel; deterministic for a given
scenario and much faster than real time. The controller sees the site only through
the frames on that channel.

Real time (run_realtime): the plant and devices run against the wall clock on any
python-can bus (for example a socketcand hub), and the controller is whatever is on
that bus: the in-process one on its own thread, or an external one (MicroPython).
Controller events are read from its GW_Event frames in both modes.
"""

import itertools
import threading
import time

import can

from controller import events as ev_codes
from controller.gateway import Gateway
from controller.ports.pythoncan import PythonCanPort
from hil.dbcdb import database
from hil.metrics import Metrics
from hil.nodes import SiteNodes
from hil.plant import Site
from hil.scenario import controller_config

PLANT_STEP_US = 500
_channel_ids = itertools.count()


class Recorder:
    """Controller events from GW_Event frames, a sampled timeline for plots, and the CAN log."""

    def __init__(self, scenario, metrics, sample_us, log_writer=None):
        db = database()
        self.ev_msg = db.get_message_by_name("GW_Event")
        self.metrics = metrics
        self.events = []
        self.samples = []
        self.sample_us = sample_us
        self.next_sample = 0
        self.log = log_writer
        self.last_seq = None
        self.lost_events = 0

    def on_frame(self, msg, now_us):
        self.log_frame(msg, now_us)
        if msg.arbitration_id == self.ev_msg.frame_id and len(msg.data) == self.ev_msg.length:
            d = self.ev_msg.decode(bytes(msg.data), decode_choices=False)
            seq = int(d["EventSeq"])
            if self.last_seq is not None and seq != (self.last_seq + 1) & 255:
                self.lost_events += 1
            self.last_seq = seq
            e = ev_codes.describe(int(d["EventCode"]), int(d["EventDetail"]), int(d["EventValue"]))
            e = {"t_s": round(now_us / 1e6, 6), **e}
            self.events.append(e)
            fields = {k: v for k, v in e.items() if k not in ("t_s", "kind")}
            self.metrics.on_event(e["t_s"], e["kind"], **fields)

    def log_frame(self, msg, now_us):
        if self.log is not None:
            m = can.Message(timestamp=now_us / 1e6, arbitration_id=msg.arbitration_id, data=msg.data,
                            is_extended_id=msg.is_extended_id, dlc=msg.dlc, channel=0)
            self.log.on_message_received(m)

    def sample(self, now_us, site):
        if now_us >= self.next_sample:
            self.next_sample += self.sample_us
            t = site.truth()
            mv = site.meter_values()
            self.samples.append((now_us / 1e6, t["utility_side_v_pu"], t["home_v_pu"], mv["frequency_hz"],
                                 t["p_grid_w"], t["p_batt_w"], t["p_load_w"], t["soc"]))


def _site(sc, cfg):
    """The plant, with the site limits the controller is configured for (they count in max_over_limit_a)."""
    return Site(sc, export_limit_kw=cfg["site"]["export_limit_kw"], main_fuse_a=cfg["site"]["main_fuse_a"])


def _report(sc, metrics, rec, extra):
    return {"scenario": sc["name"], "events": rec.events, "metrics": metrics.result(), **extra}


def _apply_events(sc_events, idx, t_us, site, nodes):
    while idx < len(sc_events) and sc_events[idx]["t_s"] * 1e6 <= t_us + 1e-6:
        ev = sc_events[idx]
        if not nodes.apply_event(ev, t_us):
            site.apply_event(ev)
        idx += 1
    return idx


def run_lockstep(sc, log_path=None, step_us=PLANT_STEP_US, sample_us=2000):
    """Run a validated scenario in virtual time; returns (report, recorder)."""
    cfg = controller_config(sc)
    period_us = cfg["control"]["period_ms"] * 1000
    channel = "hil-lockstep-%d" % next(_channel_ids)
    plant_bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
    port = PythonCanPort(interface="virtual", channel=channel)
    writer = can.Logger(log_path) if log_path else None
    site = _site(sc, cfg)
    nodes = SiteNodes(site, plant_bus, sc, seed=sc["seed"])
    gw = Gateway(cfg, port)
    metrics = Metrics(sc, period_us / 1e6)
    rec = Recorder(sc, metrics, sample_us, writer)
    nodes.on_frame = rec.on_frame
    if writer is not None:
        nodes.on_sent = rec.log_frame
    sc_events = sc["events"]
    n_steps = int(round(sc["duration_s"] * 1e6 / step_us))
    next_tick = 0
    idx = 0
    wall = time.perf_counter()
    try:
        for k in range(n_steps + 1):
            t_us = k * step_us
            idx = _apply_events(sc_events, idx, t_us, site, nodes)
            if k:
                site.step(step_us / 1e6)
            sent = nodes.frames_sent
            nodes.transmit(t_us)
            now = t_us & 0x3FFFFFFF
            gw_sent = gw.sent
            if nodes.frames_sent != sent:  # the virtual bus delivers at once: nothing new, nothing to poll
                gw.poll(now)
            if t_us >= next_tick:
                gw.tick(now)
                next_tick += period_us
            nodes.receive(t_us, poll=gw.sent != gw_sent)
            metrics.update(t_us / 1e6, step_us / 1e6, site.truth())
            rec.sample(t_us, site)
    finally:
        wall = time.perf_counter() - wall
        plant_bus.shutdown()
        port.close()
        if writer is not None:
            writer.stop()
    extra = {"run": {"mode": "lockstep", "plant_step_us": step_us, "control_period_ms": cfg["control"]["period_ms"],
                     "wall_s": round(wall, 3), "speedup": round(sc["duration_s"] / wall, 1) if wall > 0 else None,
                     "frames_refused_by_controller": gw.refused_total, "lost_controller_events": rec.lost_events}}
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
                 wait_controller_s=None):
    """Run a scenario against the wall clock on buses from bus_factory() (one per participant).

    with_controller=False leaves control to an external controller on the same bus;
    with wait_controller_s, plant time starts only when that controller's first frame
    is seen (the devices are silent until then), so a late-starting controller sees
    the whole scenario. Returns (report, recorder).
    """
    cfg = controller_config(sc)
    period_us = cfg["control"]["period_ms"] * 1000
    plant_bus = bus_factory()
    site = _site(sc, cfg)
    nodes = SiteNodes(site, plant_bus, sc, seed=sc["seed"])
    metrics = Metrics(sc, period_us / 1e6)
    writer = can.Logger(log_path) if log_path else None
    rec = Recorder(sc, metrics, sample_us, writer)
    nodes.on_frame = rec.on_frame
    if writer is not None:
        nodes.on_sent = rec.log_frame
    stop = stop or threading.Event()
    ctl_thread = None
    gw = None
    if with_controller:
        from controller.clock import RealClock
        from controller.runtime import run as run_controller

        port = PythonCanPort(bus=bus_factory())
        gw = Gateway(cfg, port)
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
            while last_us + step_us <= t_us:
                site.step(step_us / 1e6)
                last_us += step_us
                metrics.update(last_us / 1e6, step_us / 1e6, site.truth())
            late_max = max(late_max, t_us - last_us)
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
    extra = {"run": {"mode": "realtime", "plant_step_us": step_us, "control_period_ms": cfg["control"]["period_ms"],
                     "controller": "in-process" if with_controller else "external",
                     "lost_controller_events": rec.lost_events}}
    return _report(sc, metrics, rec, extra), rec
