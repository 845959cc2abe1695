"""`v2xgw hil serve --interface NAME --channel CH`: the simulated site on any python-can bus,
through hil/bus_bridge.py. SocketCAN is not on these machines: there it must fail with one
line and exit 1; the `virtual` interface stands in for a rig's vcan0 to show the site and the
controller on the outside bus."""

import subprocess
import sys
import threading
import time
import uuid

import can

from hil.bus_bridge import BusBridge
from hil.dbcdb import database
from tools import cli


def test_a_bus_that_cannot_be_opened_is_one_line_and_exit_1():
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "tools.cli", "hil", "serve", "--interface", "socketcan",
                        "--channel", "vcan0", "--duration", "5"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: cannot open the bus socketcan vcan0")
    assert time.monotonic() - t < 30  # no waiting for a bus that is not there


def test_socketcand_and_interface_exclude_each_other(capsys):
    import pytest

    with pytest.raises(SystemExit) as e:
        cli.main(["hil", "serve", "--interface", "virtual", "--socketcand", "127.0.0.1:1"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["hil", "serve"])
    assert e.value.code == 2


def test_the_site_and_controller_on_an_outside_virtual_bus(tmp_path):
    channel = "rig-" + uuid.uuid4().hex[:8]
    outside = can.Bus(interface="virtual", channel=channel)
    seen = set()
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            m = outside.recv(timeout=0.05)
            if m is not None:
                seen.add(m.arbitration_id)

    th = threading.Thread(target=listen, daemon=True)
    th.start()
    try:
        rc = cli.main(["hil", "serve", "--interface", "virtual", "--channel", channel, "--duration", "3",
                       "--quiet", "--report", str(tmp_path / "r.json")])
    finally:
        stop.set()
        th.join(2)
        outside.shutdown()
    assert rc == 0
    db = database()
    names = {db.get_message_by_frame_id(i).name for i in seen if i in {m.frame_id for m in db.messages}}
    # the controller's frames and the simulated devices', all on the outside bus
    assert {"GW_Status", "GW_InverterCmd", "MTR_Grid", "INV_Status", "EVCC_Limits"} <= names


def test_the_bridge_forwards_both_ways_once():
    a_ch, b_ch = "a-" + uuid.uuid4().hex[:8], "b-" + uuid.uuid4().hex[:8]
    inner, outer = can.Bus(interface="virtual", channel=a_ch), can.Bus(interface="virtual", channel=b_ch)
    peer_a, peer_b = can.Bus(interface="virtual", channel=a_ch), can.Bus(interface="virtual", channel=b_ch)
    br = BusBridge(inner, outer).start()
    try:
        peer_a.send(can.Message(arbitration_id=0x123, data=b"\x01\x02", is_extended_id=False))
        peer_b.send(can.Message(arbitration_id=0x1ABCDEF0, data=b"\xff" * 8, is_extended_id=True))
        peer_b.send(can.Message(is_error_frame=True))
        got_b = peer_b.recv(timeout=2)
        got_a = peer_a.recv(timeout=2)
        time.sleep(0.3)
        assert peer_a.recv(timeout=0.1) is None and peer_b.recv(timeout=0.1) is None  # nothing circulates
    finally:
        br.stop()
        for b in (inner, outer, peer_a, peer_b):
            b.shutdown()
    assert (got_b.arbitration_id, got_b.is_extended_id, bytes(got_b.data)) == (0x123, False, b"\x01\x02")
    assert (got_a.arbitration_id, got_a.is_extended_id, bytes(got_a.data)) == (0x1ABCDEF0, True, b"\xff" * 8)
    assert br.forwarded == {"to_outer": 1, "to_inner": 1} and br.error_frames == 1
