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
