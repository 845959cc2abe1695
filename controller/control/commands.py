"""The frames the gateway sends: inverter command, limits and forming setpoints, relay
command, status and events (dbc/gateway.dbc, dbc/inverter.dbc, dbc/relay.dbc).

Each message keeps one signal dict and one frame buffer for its whole life (no
allocation per period); the end-to-end CRC and alive counter are sealed into every
frame that carries them (controller/bus/e2e.py). The signal layout comes from the
generated codecs (controller/bus/candb.py): the DBC is the source of truth.
"""

from controller import events
from controller.bus import candb
from controller.bus.e2e import E2ESender


class Frame:
    """One transmitted message: its signal dict, frame buffer and E2E sender."""

    __slots__ = ("msg", "sig", "buf", "e2e")

    def __init__(self, msg):
        self.msg = msg
        self.sig = {}
        for s in msg.signals:
            self.sig[s[0]] = 0
        self.buf = bytearray(msg.length)
        self.e2e = E2ESender(msg) if msg.e2e_data_id else None


class Commands:
    """Builds and sends the gateway's frames on `port`; counts sent frames and send errors."""

    __slots__ = ("port", "cmd", "lim", "rly", "form", "status", "event", "sent", "tx_errors",
                 "status_counter", "event_seq")

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

    def tx(self, out):
        out.msg.encode_into(out.sig, out.buf)
        if out.e2e is not None:
            out.e2e.seal(out.buf)
        if self.port.send(out.msg.frame_id, out.buf):
            self.sent += 1
        else:
            self.tx_errors += 1

    def send_inverter(self, mode, p_w, q_var, takes_setpoint):
        """GW_InverterCmd. Only grid-following takes power setpoints (takes_setpoint);
        int() truncates toward 0, so a setpoint never lands above its bound."""
        s = self.cmd.sig
        s["InvModeReq"] = mode
        s["PSetpoint"] = int(p_w) if takes_setpoint else 0
        s["QSetpoint"] = int(q_var) if takes_setpoint else 0
        self.tx(self.cmd)

    def send_limits(self, iac_max, idc_charge_max, idc_discharge_max):
        """GW_InverterLimits: AC current and DC currents the inverter must not exceed."""
        s = self.lim.sig
        s["IacMax"] = iac_max
        s["IdcChargeMax"] = idc_charge_max
        s["IdcDischargeMax"] = idc_discharge_max
        self.tx(self.lim)

    def send_forming(self, v_set, f_set):
        """GW_InverterForming: the island's voltage and frequency setpoints, droop on."""
        s = self.form.sig
        s["VoltageSetpoint"] = v_set
        s["FrequencySetpoint"] = f_set
        s["DroopEnable"] = 1
        self.tx(self.form)

    def send_relay(self, close):
        self.rly.sig["RelayCloseReq"] = 1 if close else 0
        self.tx(self.rly)

    def send_status(self, mode, limiting, timed_out, ems_expired, p_w, refused):
        """GW_Status; timed_out: {events.IN_*: bool} of the supervised input groups."""
        s = self.status.sig
        s["OperatingMode"] = mode
        s["LimitingFactor"] = limiting
        s["TimeoutMeter"] = 1 if timed_out[events.IN_METER] else 0
        s["TimeoutInverter"] = 1 if timed_out[events.IN_INVERTER] else 0
        s["TimeoutRelay"] = 1 if timed_out[events.IN_RELAY] else 0
        s["TimeoutEv"] = 1 if timed_out[events.IN_EV] else 0
        s["TimeoutEms"] = 1 if ems_expired else 0
        s["PTarget"] = int(p_w)
        s["RxRefused"] = refused if refused < 65535 else 65535
        self.status_counter = (self.status_counter + 1) & 15
        s["AliveCounter"] = self.status_counter
        self.tx(self.status)

    def send_event(self, code, detail, value):
        s = self.event.sig
        s["EventCode"] = code
        s["EventDetail"] = detail
        self.event_seq = (self.event_seq + 1) & 255
        s["EventSeq"] = self.event_seq
        s["EventValue"] = value if value < 32768 else value - 65536
        self.tx(self.event)
