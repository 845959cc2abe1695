"""The simulated gateway ECU's diagnostics for `v2xgw hil serve`: UDS over ISO-TP on the bus.

What a unit in the field has on flash lives here in memory: two update slots and the
boot record (controller.update.slots.Updater), the fault memory's store
(controller.storage.BlobStore). ECU reset (0x11) re-runs the boot selection as a real
reset would; a pending image that verifies is then reported as the running software
(0xF195) and confirmed, as the self-test of a real boot would do. The device secret of
the HIL is public (HIL_SECRET below): security access on a test rig proves the
sequence, not secrecy.
"""

import hashlib

from controller.update import slots as update
from controller.diag.diagnostics import Diagnostics
from controller.storage import BlobStore, MemoryMedium

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
        self.resets = 0
        self.secret = secret
        self.running = self._boot()
        self.diag = Diagnostics(gw, self._identity(), secret, now, updater=self.updater, dtc_store=self.dtc_store,
                                reset=self._reset)

    def _boot(self):
        slot = self.updater.select_boot()
        if slot == update.NONE:
            return BASE_VERSION
        m = self.updater.manifest(slot)
        # the HIL has no application to run from the slot: a manifest that reads back is
        # its self-test, as a real boot would confirm after its own
        if m is None:
            self.updater.reject()
            return BASE_VERSION
        self.updater.confirm()
        return str(m.get("software_version", "?"))

    def _identity(self):
        return {"serial": SERIAL, "sw_version": self.running[:16], "system_name": "v2x-gateway HIL"}

    def _reset(self, kind):
        self.resets += 1
        self.running = self._boot()
        v = self._identity()["sw_version"].encode()
        self.diag.uds.identity[0xF195] = v + b" " * (16 - len(v))
