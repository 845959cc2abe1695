"""hil.nodes.SiteNodes: which frames the simulated devices put on the bus."""

import pathlib

import can

from hil import scenario
from hil.nodes import SiteNodes
from hil.runner import _site
from hil.scenario import controller_config

SCENARIOS = pathlib.Path(__file__).resolve().parent.parent / "scenarios"


def _frames_sent(ev_on_can, seconds=2.0):
    sc = scenario.load(SCENARIOS / "outage-and-return.json")
    site = _site(sc, controller_config(sc))
    bus = can.Bus(interface="virtual", channel="test-nodes-%s" % ev_on_can, receive_own_messages=False)
    try:
        nodes = SiteNodes(site, bus, sc, seed=sc["seed"])
        nodes.ev_on_can = ev_on_can
        sent = []
        nodes.on_sent = lambda frame_id, _rx, _data, _t: sent.append(frame_id)
        for ms in range(int(seconds * 1000)):
            nodes.transmit(ms * 1000)
        return nodes, sent
    finally:
        bus.shutdown()


def test_the_ev_on_can_sends_limits_and_status_every_100_ms():
    nodes, sent = _frames_sent(True)
    assert sent.count(nodes.tx_ev_limits.frame_id) >= 20
    assert sent.count(nodes.tx_ev_status.frame_id) == 20


def test_an_ev_on_iso_15118_sends_nothing_on_can():
    # its data reach the controller through the SECC alone; plant frames would compete with them
    nodes, sent = _frames_sent(False)
    assert nodes.tx_ev_limits.frame_id not in sent
    assert nodes.tx_ev_status.frame_id not in sent
    assert nodes.tx_relay.frame_id in sent  # the other devices still speak
