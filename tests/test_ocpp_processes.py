"""The three commands as a user runs them, each its own process: the platform (`v2xgw csms`
with the shipped script), the simulated site and controller behind socketcand (`v2xgw hil
serve --external-ems`), and the station next to them on that bus (`v2xgw ocpp`): the script's
CentralSetpoint discharge shows as export in the meter values the platform logs."""

import json
import socket
import subprocess
import sys
import time

import pytest

from tools.firmware_heap import free_port

PY = [sys.executable, "-m", "tools.cli"]


def test_csms_hil_and_station_as_separate_processes(tmp_path):
    csms_port, can_port = free_port(), free_port()
    log = tmp_path / "csms.jsonl"
    procs = []
    try:
        procs.append(subprocess.Popen(PY + ["csms", "--listen", "127.0.0.1:%d" % csms_port, "--quiet", "--script",
                                            "ocpp_link/scripts/central-setpoint.json", "--log-json", str(log),
                                            "--duration", "45"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        procs.append(subprocess.Popen(PY + ["hil", "serve", "scenarios/ocpp-v2x.json", "--socketcand",
                                            "127.0.0.1:%d" % can_port, "--external-ems", "--quiet",
                                            "--write-config", str(tmp_path / "gw.json"), "--duration", "40"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for _ in range(100):  # the hub listens, the configuration is written
            if (tmp_path / "gw.json").exists():
                try:
                    socket.create_connection(("127.0.0.1", can_port), timeout=0.2).close()
                    break
                except OSError:
                    pass
            time.sleep(0.1)
        st = subprocess.run(PY + ["ocpp", "--csms", "ws://127.0.0.1:%d" % csms_port, "--id", "GW-1", "--interface",
                                  "socketcand", "--host", "127.0.0.1", "--port", str(can_port), "--config",
                                  str(tmp_path / "gw.json"), "--data", str(tmp_path / "station"), "--set",
                                  "SampledDataCtrlr.TxUpdatedInterval=2", "--duration", "30"],
                            capture_output=True, text=True, timeout=90)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)
    assert st.returncode == 0, st.stderr
    assert "Got incomplete message" not in st.stdout + st.stderr
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    answers = [r["answer"] for r in recs if r.get("action") == "SetChargingProfile" and "answer" in r]
    assert len(answers) >= 3
    exports = [sv["value"] for r in recs if r.get("action") == "TransactionEvent" and "answer" not in r
               for m in r["payload"].get("meterValue", []) for sv in m["sampledValue"]
               if sv["measurand"] == "Power.Active.Export"]
    assert max(exports) == pytest.approx(5000.0, abs=100.0)
    seqs = [r["payload"]["seqNo"] for r in recs if r.get("action") == "TransactionEvent" and "answer" not in r]
    assert seqs == list(range(len(seqs)))
    assert "transaction" in st.stdout and "0 malformed frames" in st.stdout
