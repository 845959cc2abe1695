"""A scripted site for firmware tests: devices that send valid frames through the generated codec.

Not a test module (no test_ prefix): helpers shared by the gateway tests, runnable
under MicroPython. The HIL (hil/) is the full simulation; this is the minimum to
drive the Gateway deterministically from a test.
"""

from controller.bus import candb
from controller.bus.e2e import E2ESender
from controller.bus.ports.memory import memory_pair


class Device:
    def __init__(self, port):
        self.port = port
        self.senders = {}

    def send(self, name, **values):
        msg = candb.BY_NAME[name]
        d = {}
        for s in msg.signals:
            d[s[0]] = 0
        d.update(values)
        buf = bytearray(msg.length)
        msg.encode_into(d, buf)
        if msg.e2e_data_id:
            if name not in self.senders:
                self.senders[name] = E2ESender(msg)
            self.senders[name].seal(buf)
        self.port.send(msg.frame_id, buf)
        return buf


class Site:
    """Healthy grid-connected site values; send_all() emits one round of every cyclic input."""

    def __init__(self):
        self.gw_port, port = memory_pair(256)
        self.dev = Device(port)
        self.port = port
        self.grid_v = 230.0
        self.grid_f = 50.0
        self.p_grid = 1000
        self.p_inv = 0
        self.ev = {"MaxChargePower": 11000, "MaxDischargePower": 11000, "MinSoc": 20.0, "SessionActive": 1,
                   "MinSocValid": 1}
        self.soc = 80.0
        self.relay_state = 1
        self.inv_v = None  # None: the inverter measures what the meter measures (one bus)
        # the inverter reports the mode it was last commanded (None: whatever that is);
        # set inv_mode to make it report something else
        self.inv_mode = None
        self.inv_flags = {}  # extra INV_Status signals, e.g. {"FaultAcGrid": 1}
        self.inv_f = 50.0
        self.sync_phase = 0.0
        self._commanded = 0
        self._rx = []  # the gateway's frames not yet read by commands(): the last RX_KEEP

    def send_all(self, meter=True, inverter=True, relay=True, ev=True):
        d = self.dev
        if meter:
            d.send("MTR_Grid", GridVoltage=self.grid_v, GridFrequency=self.grid_f)
            d.send("MTR_Power", ActivePower=self.p_grid)
        self._drain()
        if inverter:
            mode = self._commanded if self.inv_mode is None else self.inv_mode
            d.send("INV_Status", InvModeActual=mode, InvState=2 if mode else 1, PActual=self.p_inv, **self.inv_flags)
            d.send("INV_AcMeasure", AcVoltage=self.grid_v if self.inv_v is None else self.inv_v, AcFrequency=self.inv_f)
        if relay:
            d.send("RLY_Feedback", ContactState=self.relay_state, UtilityVoltagePresent=1, UtilityVoltage=self.grid_v,
                   SyncPhaseDiff=self.sync_phase)
        if ev:
            d.send("EVCC_Limits", **self.ev)
            d.send("EVCC_Status", Soc=self.soc, SocValid=1, BatteryCapacity=94.0, BatteryVoltage=390.0)

    RX_KEEP = 256

    def _drain(self):
        """Take the gateway's frames off the bus; the inverter follows its command."""
        rx = self._rx
        while True:
            f = self.port.recv()
            if f is None:
                break
            if f[0] == candb.ID_GW_InverterCmd:
                self._commanded = f[2][0] & 0x3
            rx.append((f[0], bytes(f[2])))
        if len(rx) > self.RX_KEEP:
            del rx[:len(rx) - self.RX_KEEP]

    def commands(self):
        """Decoded frames the gateway sent since the last call (the last RX_KEEP of them):
        list of (name, values)."""
        self._drain()
        out = []
        for fid, data in self._rx:
            msg = candb.MESSAGES[fid]
            out.append((msg.name, msg.decode(data)))
        self._rx = []
        return out

    def last(self, name):
        v = None
        for n, d in self.commands():
            if n == name:
                v = d
        return v


class CrcFlip:
    """A port that breaks the CRC byte of what it sends (a transmission error)."""

    def __init__(self, port):
        self.port = port

    def send(self, can_id, data):
        data[7] ^= 0x5A
        self.port.send(can_id, data)
