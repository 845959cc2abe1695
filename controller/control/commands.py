"""The frames the gateway sends: inverter command, limits and forming setpoints, relay
command, status and events (dbc/gateway.dbc, dbc/inverter.dbc, dbc/relay.dbc).

Each message keeps one signal dict and one frame buffer for its whole life (no
allocation per period); the end-to-end CRC and alive counter are sealed into every
frame that carries them (controller/bus/e2e.py). The signal layout comes from the
generated codecs (controller/bus/candb.py): the DBC is the source of truth.

Guarantee: sending never raises. Every value computed in the loop is fitted into its
signal's DBC range before encoding (NaN counts as 0): the configuration check at load
makes that a no-op in practice, and when it is not, the value is clamped, `clamped`
counts it and the gateway reports it (a command_clamped event). A frame the receiver
would refuse for range is never sent.
"""

from controller import events
from controller.bus import candb
from controller.bus.e2e import E2ESender


# the signals whose values the loop computes: fit() holds them to their DBC range
FITTED = ("PSetpoint", "QSetpoint", "IacMax", "IdcChargeMax", "IdcDischargeMax", "VoltageSetpoint",
          "FrequencySetpoint", "PTarget")


class Frame:
    """One transmitted message: its signal dict, frame buffer, E2E sender and the DBC
    range of each signal the loop computes (name -> (minimum, maximum))."""

    __slots__ = ("msg", "sig", "buf", "e2e", "range", "dirty")

    def __init__(self, msg):
        self.msg = msg
        self.sig = {}
        self.range = {}
        for s in msg.signals:
            self.sig[s[0]] = 0
            if s[0] in FITTED:
                self.range[s[0]] = (s[1], s[2])
        self.buf = bytearray(msg.length)
        self.e2e = E2ESender(msg) if msg.e2e_data_id else None
        self.dirty = True  # the buffer does not hold the signals yet

    def set(self, name, value):
        """One signal for the next transmission; the frame is encoded again only when a
        value changed (encoding scaled values allocates floats under MicroPython)."""
        s = self.sig
        if s[name] != value:
            s[name] = value
            self.dirty = True


class Commands:
    """Builds and sends the gateway's frames on `port`; counts sent frames and send errors."""

    __slots__ = ("port", "cmd", "lim", "rly", "form", "status", "event", "sent", "tx_errors",
                 "status_counter", "event_seq", "clamped", "clamped_id")

    def __init__(self, port):
        M = candb.BY_NAME
        self.port = port
        self.cmd = Frame(M["GW_InverterCmd"])
        self.lim = Frame(M["GW_InverterLimits"])
        self.rly = Frame(M["GW_RelayCmd"])
        self.form = Frame(M["GW_InverterForming"])
        self.status = Frame(M["GW_Status"])
        self.event = Frame(M["GW_Event"])
        self.sent = 0
        self.tx_errors = 0
        self.status_counter = 0
        self.event_seq = 0
        self.clamped = 0  # values fitted into their signal's range (reported by the gateway)
        self.clamped_id = 0  # the frame of the last one

    def fit(self, out, name, x):
        """x inside the DBC range of signal `name` of `out`; counts what it had to change."""
        lo, hi = out.range[name]
        if x != x:  # NaN: nothing to command
            y = 0 if lo <= 0 <= hi else lo
        elif x < lo:
            y = lo
        elif x > hi:
            y = hi
        else:
            return x
        self.clamped += 1
        self.clamped_id = out.msg.frame_id
        return y

    def tx(self, out):
        if out.dirty:
            try:
                out.msg.encode_into(out.sig, out.buf)
            except (OverflowError, ValueError, TypeError, KeyError):
                # cannot happen with fitted values; if it does, the frame is not sent (its
                # receiver's command supervision then acts) and the loop goes on
                self.tx_errors += 1
                return
            out.dirty = False
        if out.e2e is not None:
            out.e2e.seal(out.buf)
        if self.port.send(out.msg.frame_id, out.buf):
            self.sent += 1
        else:
            self.tx_errors += 1

    def send_inverter(self, mode, p_w, q_var, takes_setpoint):
        """GW_InverterCmd. Only grid-following takes power setpoints (takes_setpoint);
        int() truncates toward 0, so a setpoint never lands above its bound."""
        out = self.cmd
        out.set("InvModeReq", mode)
        if takes_setpoint:
            out.set("PSetpoint", int(self.fit(out, "PSetpoint", p_w)))
            out.set("QSetpoint", int(self.fit(out, "QSetpoint", q_var)))
        else:
            out.set("PSetpoint", 0)
            out.set("QSetpoint", 0)
        self.tx(out)

    def send_limits(self, iac_max, idc_charge_max, idc_discharge_max):
        """GW_InverterLimits: AC current and DC currents the inverter must not exceed."""
        out = self.lim
        out.set("IacMax", self.fit(out, "IacMax", iac_max))
        out.set("IdcChargeMax", self.fit(out, "IdcChargeMax", idc_charge_max))
        out.set("IdcDischargeMax", self.fit(out, "IdcDischargeMax", idc_discharge_max))
        self.tx(out)

    def send_forming(self, v_set, f_set):
        """GW_InverterForming: the island's voltage and frequency setpoints, droop on."""
        out = self.form
        out.set("VoltageSetpoint", self.fit(out, "VoltageSetpoint", v_set))
        out.set("FrequencySetpoint", self.fit(out, "FrequencySetpoint", f_set))
        out.set("DroopEnable", 1)
        self.tx(out)

    def send_relay(self, close):
        self.rly.set("RelayCloseReq", 1 if close else 0)
        self.tx(self.rly)

    def send_status(self, mode, limiting, timed_out, ems_expired, p_w, refused):
        """GW_Status; timed_out: {events.IN_*: bool} of the supervised input groups."""
        out = self.status
        out.set("OperatingMode", mode)
        out.set("LimitingFactor", limiting)
        out.set("TimeoutMeter", 1 if timed_out[events.IN_METER] else 0)
        out.set("TimeoutInverter", 1 if timed_out[events.IN_INVERTER] else 0)
        out.set("TimeoutRelay", 1 if timed_out[events.IN_RELAY] else 0)
        out.set("TimeoutEv", 1 if timed_out[events.IN_EV] else 0)
        out.set("TimeoutEms", 1 if ems_expired else 0)
        out.set("PTarget", int(self.fit(out, "PTarget", p_w)))
        out.set("RxRefused", refused if refused < 65535 else 65535)
        self.status_counter = (self.status_counter + 1) & 15
        out.set("AliveCounter", self.status_counter)
        self.tx(out)

    def send_event(self, code, detail, value):
        out = self.event
        out.set("EventCode", code)
        out.set("EventDetail", detail)
        self.event_seq = (self.event_seq + 1) & 255
        out.set("EventSeq", self.event_seq)
        value &= 0xFFFF  # EventValue is 16 bits, two's complement
        out.set("EventValue", value if value < 32768 else value - 65536)
        self.tx(out)
