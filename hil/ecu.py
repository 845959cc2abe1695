"""The simulated gateway ECU's diagnostics for `v2xgw hil serve`: UDS over ISO-TP on the bus.

What a unit in the field has on flash lives here in memory: two update slots and the
boot record (controller.update.slots.Updater), the fault memory's store
(controller.storage.BlobStore) and the configuration written over UDS
(controller.storage.ConfigStore). ECU reset (0x11) re-runs the boot selection once, as a
real reset would: a pending image is then reported as the running software (0xF195) and
runs its trial; the firmware's own self-test (controller/update/selftest.py) confirms it
once the running gateway has served the simulated site for its periods, or asks for
another reset when it cannot (the boot counter then rolls back). What the HIL cannot do
is run the new image's code: the gateway keeps running the code it started with, and a
configuration written over UDS is stored (and read back over UDS) but applied only by a
real restart of controller.main. The device secret of the HIL is public (HIL_SECRET
below): security access on a test rig proves the sequence, not secrecy.
"""

import hashlib

from controller.update import launch
from controller.update import slots as update
from controller.update.selftest import FAILED, RUNNING
from controller.diag.diagnostics import Diagnostics
from controller.storage import BlobStore, ConfigStore, MemoryMedium

HIL_SECRET = hashlib.sha256(b"v2xgw HIL device secret - public, test rigs only").digest()
BASE_VERSION = "base"
SLOT_SIZE = 512 * 1024
SERIAL = "HIL-0001"


class SimulatedEcu:
    """Diagnostics attached to a Gateway, with the flash of a unit simulated in memory."""

    def __init__(self, gw, now, secret=HIL_SECRET):
        self.gw = gw
        self.boot = MemoryMedium(4096)
        self.slots = (MemoryMedium(SLOT_SIZE), MemoryMedium(SLOT_SIZE))
        self.updater = update.Updater(self.boot, self.slots)
        self.dtc_medium = MemoryMedium(8192)
        self.dtc_store = BlobStore(self.dtc_medium, 4000)
        self.config_medium = MemoryMedium(4096)
        self.config_store = ConfigStore(self.config_medium)
        self.resets = 0
        self.secret = secret
        self.selftest = None
        self.booted = update.NONE
        self.running = self._boot(now)
        _, overrides = self.config_store.apply(gw.cfg)
        self.diag = Diagnostics(gw, self._identity(), secret, now, updater=self.updater, dtc_store=self.dtc_store,
                                reset=self._reset, config_store=self.config_store, config_overrides=overrides)
        self.meter = None  # the energy meter on its own RAM medium, read over UDS (docs/metering.md)
        if gw.cfg["metering"]["enabled"]:
            from controller.metering.diag import attach_uds
            from hil.metering import HilMeter

            self.meter = HilMeter(gw.cfg, gw, now)
            attach_uds(self.meter.meter, self.diag.uds)
        gw.taps.append(self)

    def _boot(self, now):
        """A power-up: the boot selection, once; the self-test of a trial image."""
        self.booted = self.updater.select_boot()
        self.selftest = launch.start_selftest(self.updater, self.gw, self.booted, now)
        return launch.version(self.updater, self.booted)

    def _identity(self):
        return {"serial": SERIAL, "sw_version": self.running[:16], "system_name": "v2x-gateway HIL"}

    def _reset(self, kind, now=None):
        self.resets += 1
        self.diag.flush()
        self.running = self._boot(self.diag._now if now is None else now)
        v = self._identity()["sw_version"].encode()
        self.diag.uds.identity[0xF195] = v + b" " * (16 - len(v))

    # a tap on the gateway's port, for the self-test: it reads nothing from the bus itself
    def rx_ids(self):
        return []

    def on_port_frame(self, frame, now):
        return False

    def poll(self, now):
        """The self-test ticks with the loop (taps are polled at least once per period; it
        also waits for PERIODS periods of time, so extra polls do not hurry it)."""
        t = self.selftest
        if t is not None and t.state == RUNNING and t.tick(now) == FAILED:
            self._reset(0x01, now)  # what controller.main does: restart, the counter decides
