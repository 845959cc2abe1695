"""Phasor model of the home site the HIL plays against the controller.

Utility source (stiff, or behind a source impedance) and breaker, the site's grid relay,
the home bus with its load, the bidirectional inverter on the EV battery, and the grid
meter at the point of connection. RMS phasors, quasi-static within a step of dt
(0.1..1 ms), balanced phases. The equations, parameters and their sources are in
docs/plant.md; the constants below carry the same names.

Sign conventions: power and current seen from the EV battery, positive = charging
the EV (`p_batt_w`, `p_ac_w`, `i_dc_a`); the inverter's reactive power `q_inv` is
positive when the inverter supplies reactive power (over-excited, as QSetpoint in
the DBC); the meter's power is positive when the site imports from the grid.

The node layer (hil/nodes.py) calls the command methods between steps and reads the
measurement snapshots; the runner calls step(dt) and truth() once per step. Nothing
here is random: same inputs, same outputs.

Site.step() takes a short path when nothing but the integrators can move (a quiescent
step); otherwise it runs the phases of a step in the order of docs/plant.md, one method
each: _utility_source, _relay_contact, _inverter_mode, _solve_bus (which calls the power
stage's _gfl_grid / _gfm_grid / _gfm_island / _gfl_island, and _solve_poc for a grid behind
a source impedance), _outer_loop, _pll,
_inverter_protection, _battery, _meter_windows, _publish_truth and _check_quiet.
"""

import math

_PI = math.pi
_TWO_PI = 2.0 * math.pi
_sqrt = math.sqrt
_exp = math.exp
_log = math.log
_sin = math.sin
_cos = math.cos
_atan2 = math.atan2
_DEG = 180.0 / math.pi
_INF = math.inf

# ----------------------------------------------------------------- parameters
# (docs/plant.md explains each one)
EFF = 0.97                  # inverter efficiency, both directions
SLEW_FULL_SCALE_S = 0.005   # slew limit 2 * S_rated per 10 ms: 0 -> rated in 5 ms
V_BATT_0 = 350.0            # battery voltage at soc 0 [V]
V_BATT_SOC = 50.0           # + this per unit of soc [V]
AC_WIN_LO_PU = 0.5          # grid-following AC window of the power stage
AC_WIN_HI_PU = 1.2
AC_WIN_F_HZ = 5.0           # |f_pll - f_n| beyond this: PLL lost
AC_WIN_TRIP_S = 0.002       # out of the window this long -> stop (FaultAcGrid)
AC_RESTART_S = 0.020        # back in the window this long -> grid-following resumes
AC_LOSS_PU = 0.5            # fast AC-loss detector threshold
AC_LOSS_CONFIRM_S = 0.0005  # below it for this long -> one INV_AcLossEvent
AC_LOSS_REARM_PU = 0.85     # voltage must come back above this to arm it again
OC_FACTOR = 1.2             # over-current trip: i_ac > 1.2 * rated ...
OC_TRIP_S = 0.010           # ... for this long (latched)
CP_BREAK_PU = 0.7           # constant-power load turns constant-impedance below this
TAU_OUTER_S = 0.020         # grid-following outer loop: terminal-voltage filter the current reference divides by
V_FRT_LO_PU = 0.9           # outside this band the outer loop holds (ride-through mode: current references held)
V_FRT_HI_PU = 1.1
C_BUS_F = 20e-6             # home bus capacitance per phase (inverter filter + appliances)
U_MAX_PU = 1.5              # island voltage clip (pu)
PLL_BW_HZ = 20.0            # PLL -3 dB bandwidth
PLL_ZETA = 0.707
F_DRIFT_HZ_S_PER_RAD = 50.0  # frequency drift of a GFL island without L/C (per rad of pf-angle mismatch)
ISLAND_F_MIN = 0.8          # island frequency clip, fraction of nominal
ISLAND_F_MAX = 1.2
DROOP_P = 0.01              # grid-forming P-f droop: 1 % frequency per 100 % rated P
DROOP_Q = 0.05              # grid-forming Q-V droop: 5 % voltage per 100 % rated Q
TAU_DROOP_S = 0.020         # power measurement filter of the droop loops
TAU_V_GFM_S = 0.001         # grid-forming voltage build-up time constant
X_COUPLING_PU = 0.15        # inverter output reactance (filter + transformer), rating base
T_AMB_C = 25.0              # heatsink model
R_TH_K_PER_W = 0.08
TAU_TH_S = 120.0
OT_TRIP_C = 90.0
OT_CLEAR_C = 80.0
V_PRESENT_PU = 0.2          # below this a voltage has no frequency or phase
RELAY_PRESENT_PU = 0.5      # RLY_Feedback.UtilityVoltagePresent threshold
FREQ_WINDOW_CYCLES = 2      # meter frequency: phase advance over 2 nominal cycles
ROCOF_WINDOW_S = 0.100      # meter ROCOF: frequency change over 100 ms

# products of the constants above that the step uses (the same floats as written out)
_CP_BREAK_U = CP_BREAK_PU * CP_BREAK_PU    # the load's breakpoint as squared voltage (pu^2)
_K_TH = R_TH_K_PER_W * (1.0 - EFF)         # heatsink temperature rise per W of battery power

MODE_OFF, MODE_GFL, MODE_GFM = 0, 1, 2
ST_INIT, ST_STANDBY, ST_RUNNING, ST_FAULT = 0, 1, 2, 3
RELAY_OPEN, RELAY_CLOSED, RELAY_MOVING = 0, 1, 2
LOSS_UNDERVOLTAGE = 1


def _wrap(a):
    """Angle to [-pi, pi)."""
    return (a + _PI) % _TWO_PI - _PI


TRUTH_FIELDS = (
    "t_s",
    "home_v_pu", "home_f_hz", "utility_side_v_pu", "grid_v_pu", "grid_f_hz",
    "breaker_closed", "relay_closed", "relay_state",
    "inverter_mode", "inverter_state",
    "p_batt_w", "p_ac_w", "q_inv_var", "i_ac_a", "i_dc_a",
    "p_load_w", "q_load_var", "p_grid_w", "q_grid_var", "i_grid_a", "i_export_a",
    "soc", "v_batt", "bms_blocked",
    "i_dc_limit_a", "i_dc_limit_changed_s", "i_ac_limit_a", "i_ac_limit_changed_s",
    "i_export_limit_a", "i_export_limit_changed_s", "i_fuse_limit_a",
    "sync_dphi_deg", "sync_df_hz", "sync_dv_pu",
)


class Truth:
    """Plant state the metrics need, refreshed in place at every step.

    Attribute access (tr.home_v_pu) or mapping access (tr["home_v_pu"]). The object
    is reused: copy it with as_dict() to keep a snapshot.
    """

    __slots__ = TRUTH_FIELDS

    def __getitem__(self, key):
        return getattr(self, key)

    def get(self, key, default=None):
        return getattr(self, key, default)

    def keys(self):
        return TRUTH_FIELDS

    def as_dict(self):
        return {k: getattr(self, k) for k in TRUTH_FIELDS}


class Site:
    """The simulated site. See the module docstring and docs/plant.md."""

    __slots__ = (
        # constants of the site
        "v_n", "f_n", "w_n", "n_ph", "s_rated", "i_rated", "slew", "relay_open_s", "relay_close_s",
        "cap_j", "limiter", "export_limit_w", "main_fuse_a", "seed",
        # time
        "t_s", "_t0", "_n", "_dt",
        # utility source and breaker
        "uv", "uv_target", "uv_rate", "uf", "uf_target", "uf_rate", "uth", "breaker",
        "_src_moving",  # off nominal frequency or on a ramp: a full step moves the source
        "_zg", "_kr", "_kx",  # source impedance: configured?, R and X over n_ph * V_n^2 (pu per W, var)
        # relay
        "rl_cmd", "rl_conn", "rl_moving", "rl_timer",
        # home bus and utility side of the relay
        "bv", "bf", "bth", "usv", "usf", "usth",
        # load
        "ld_rlc", "ld_p", "ld_q", "ld_s", "ld_qf", "ld_qc", "_w0", "p_load", "q_load",
        # EV battery
        "soc", "v_batt", "max_charge_w", "max_discharge_w", "min_soc", "session_active", "_limits_away", "_dir", "_dc_lim_changed", "_bms",
        # inverter commands
        "cmd_mode", "p_set", "q_set", "iac_max", "idc_ch_max", "idc_dis_max", "i_lim",
        "v_set_pu", "w_set", "droop",
        # inverter state
        "mode", "state", "f_oc", "f_ot", "f_acgrid", "f_timeout",
        "p_batt", "p_ac", "q_inv", "i_ac", "temp",
        "p_ref", "q_ref", "_pac_ref", "v_f",
        "pll_th", "pll_dw", "_kp", "_ki",
        "gfm_th", "gfm_pf", "gfm_qf",
        "_win_since", "_restart_left", "_loss_since", "_loss_armed", "_loss_pending", "_oc_since",
        # step-size dependent factors
        "_e_pll", "_e_vgfm", "_a_droop", "_a_th", "_a_vf",
        # grid-side flows
        "p_grid", "q_grid", "i_grid", "e_import_wh", "e_export_wh",
        # measurement windows (ring buffers)
        "_L", "_nc", "_nf", "_nr", "_k", "_live",
        "_b_v2", "_b_th", "_b_p", "_b_q", "_b_i2", "_b_bv2",
        # sync values across the open relay, as they stood before the contact moved
        "sync_dphi", "sync_df", "sync_dv",
        "_truth",
        # set when an event-driven frame may be due (relay contact, EV limits, AC loss);
        # the node layer clears it (hil/nodes.py)
        "notify",
        # cached for the step
        "_nvn", "_oc_a", "_sync_set", "_rl_dirty",
        # quiescent steps: nothing but the integrators moves (see step() and _check_quiet)
        "_quiet", "_qv", "_gfl_fixed",
    )

    def __init__(self, scenario, export_limit_kw=None, main_fuse_a=None, relay_closed=True,
                 current_limiter=True, dt_s=0.0005):
        site = scenario["site"]
        self.v_n = float(site["nominal_voltage_v"])
        self.f_n = float(site["nominal_frequency_hz"])
        self.w_n = _TWO_PI * self.f_n
        self.n_ph = int(site["phases"])
        self.relay_open_s = site["relay_open_ms"] / 1000.0
        self.relay_close_s = site["relay_close_ms"] / 1000.0
        self.s_rated = float(scenario["inverter"]["rating_kva"]) * 1000.0
        self.i_rated = self.s_rated / (self.n_ph * self.v_n)
        self.slew = self.s_rated / SLEW_FULL_SCALE_S
        self.limiter = bool(current_limiter)
        self.export_limit_w = None if export_limit_kw is None else float(export_limit_kw) * 1000.0
        self.main_fuse_a = None if main_fuse_a is None else float(main_fuse_a)
        self.seed = scenario.get("seed", 0)  # no noise in this model; kept for a future noise option
        # series impedance of the feeder and transformer per phase; None (or 0 + j0) is the stiff grid,
        # whose code path is left exactly as it was (same numbers, bit for bit)
        zg = site.get("grid_impedance")
        r = float(zg["r_ohm"]) if zg else 0.0
        x = float(zg["x_ohm"]) if zg else 0.0
        self._zg = r != 0.0 or x != 0.0
        vn2 = self.n_ph * self.v_n * self.v_n
        self._kr, self._kx = r / vn2, x / vn2

        ev = scenario["ev"]
        self.soc = float(ev["soc"])
        self.cap_j = float(ev["capacity_kwh"]) * 3.6e6
        self.max_charge_w = float(ev["max_charge_kw"]) * 1000.0
        self.max_discharge_w = float(ev["max_discharge_kw"]) * 1000.0
        self.min_soc = float(ev["min_soc"])
        self.session_active = True  # the EV is plugged in (scenario event ev_session)
        self._limits_away = (0.0, 0.0)
        self.v_batt = V_BATT_0 + V_BATT_SOC * self.soc
        self._dir = 1
        self._dc_lim_changed = 0.0
        self._bms = False

        self._set_load(scenario["load"])

        self.t_s = 0.0
        self._t0 = 0.0
        self._n = 0
        self._dt = None

        self.uv = self.uv_target = 1.0
        self.uv_rate = 0.0
        self.uf = self.uf_target = self.f_n
        self.uf_rate = 0.0
        self._src_moving = False
        self.uth = 0.0
        self.breaker = True

        closed = bool(relay_closed)
        self.rl_cmd = self.rl_conn = closed
        self.rl_moving = False
        self.rl_timer = 0.0

        self.bv = 1.0 if closed else 0.0
        self.bf = self.f_n
        self.bth = 0.0
        self.usv, self.usf, self.usth = 1.0, self.f_n, 0.0

        # inverter: off, limits at the rating until the gateway sends its own
        self.cmd_mode = MODE_OFF
        self.p_set = self.q_set = 0.0
        self.iac_max = self.i_rated
        self.idc_ch_max = self.idc_dis_max = 1e9
        self.i_lim = self.i_rated
        self.v_set_pu = 1.0
        self.w_set = self.w_n
        self.droop = True
        self.mode = MODE_OFF
        self.state = ST_STANDBY
        self.f_oc = self.f_ot = self.f_acgrid = self.f_timeout = False
        self.p_batt = self.p_ac = self.q_inv = self.i_ac = 0.0
        self.p_ref = self.q_ref = self._pac_ref = 0.0
        self.v_f = 1.0
        self.temp = T_AMB_C
        self.pll_th = 0.0
        self.pll_dw = 0.0
        w_pll = _TWO_PI * PLL_BW_HZ / 2.06  # -3 dB bandwidth of a zeta=0.707 loop is 2.06 * w_n
        self._kp = 2.0 * PLL_ZETA * w_pll
        self._ki = w_pll * w_pll
        self.gfm_th = 0.0
        self.gfm_pf = self.gfm_qf = 0.0
        self._win_since = -1.0
        self._restart_left = 0.0
        self._loss_since = -1.0
        self._loss_armed = closed
        self._loss_pending = None
        self._oc_since = -1.0

        self.sync_dphi = self.sync_df = self.sync_dv = 0.0
        self._sync_set = True
        self._rl_dirty = False
        self._quiet = 0
        self._qv = None
        self._gfl_fixed = False
        self._nvn = self.n_ph * self.v_n
        self._oc_a = OC_FACTOR * self.i_rated
        self.notify = True
        if closed and self._zg:
            # the load's own drop is there from the start (the meter windows begin with it), and
            # the outer loop's filter sits at the bus voltage as it would after a long time there
            v = self._poc_v(1.0, 1.0, MODE_OFF, 0.0)
            self.bv = self.usv = v
            self.v_f = V_FRT_LO_PU if v < V_FRT_LO_PU else V_FRT_HI_PU if v > V_FRT_HI_PU else v
            self.p_load, self.q_load = self._load_pq(v * v, 1.0)
            self.p_grid, self.q_grid = self.p_load, self.q_load
            self.i_grid = _sqrt(self.p_grid ** 2 + self.q_grid ** 2) / (self._nvn * v) if v > 0.01 else 0.0
        else:
            if closed:
                self.p_load, self.q_load = self._load_pq(1.0, 1.0)
                self.p_grid, self.q_grid = self.p_load, self.q_load
            else:
                self.p_load = self.q_load = self.p_grid = self.q_grid = 0.0
            self.i_grid = _sqrt(self.p_grid ** 2 + self.q_grid ** 2) / (self.n_ph * self.v_n)
        self.e_import_wh = self.e_export_wh = 0.0
        self._truth = Truth()
        self._set_dt(dt_s)
        self._publish()

    # ================================================================ load
    def _set_load(self, load):
        if "rlc" in load:
            r = load["rlc"]
            p = float(r["p_kw"]) * 1000.0
            qf = float(r.get("q_factor", 1.0))
            qc = qf + float(r.get("reactive_mismatch_pct", 0.0)) / 100.0
            self.ld_rlc = True
            self.ld_p, self.ld_q, self.ld_s = p, 0.0, p
            self.ld_qf, self.ld_qc = qf, qc
            w_tank = (abs(qf) + abs(qc)) * p / (2.0 * self.w_n)  # mean energy in L and C at nominal V
        else:
            p = float(load["p_kw"]) * 1000.0
            q = float(load.get("q_kvar", 0.0)) * 1000.0
            self.ld_rlc = False
            self.ld_p, self.ld_q, self.ld_s = p, q, _sqrt(p * p + q * q)
            self.ld_qf = self.ld_qc = 0.0
            w_tank = 0.0
        w_bus = 0.5 * self.n_ph * C_BUS_F * self.v_n * self.v_n
        self._w0 = w_bus + w_tank

    def _load_pq(self, u, x):
        """Load P, Q [W, var] at squared voltage u (pu^2) and frequency ratio x = f/f_n."""
        p = self.ld_p
        if self.ld_rlc:
            return p * u, p * u * (self.ld_qf / x - self.ld_qc * x)
        if u >= CP_BREAK_PU * CP_BREAK_PU:
            return p, self.ld_q
        k = u / (CP_BREAK_PU * CP_BREAK_PU)
        return p * k, self.ld_q * k

    # ================================================================ step size
    def _set_dt(self, dt):
        self._quiet = 0
        self._dt = dt
        self._t0 = self.t_s
        self._n = 0
        self._e_pll = _exp(-dt * _TWO_PI * PLL_BW_HZ)
        self._e_vgfm = _exp(-dt / TAU_V_GFM_S)
        self._a_droop = 1.0 - _exp(-dt / TAU_DROOP_S)
        self._a_th = 1.0 - _exp(-dt / TAU_TH_S)
        self._a_vf = 1.0 - _exp(-dt / TAU_OUTER_S)
        per = 1.0 / (self.f_n * dt)
        self._nc = max(1, int(round(per)))
        self._nf = max(1, int(round(FREQ_WINDOW_CYCLES * per)))
        self._nr = max(1, int(round(ROCOF_WINDOW_S / dt)))
        L = self._nr + self._nf + 2
        self._L = L
        self._k = 0
        # history as if the present state had lasted for ever (phase advanced backwards)
        us2 = self.usv * self.usv
        dth = (self.usf - self.f_n) * _TWO_PI * dt if self.usv > V_PRESENT_PU else 0.0
        self._b_th = [_wrap(self.usth - dth * (L - j)) for j in range(1, L + 1)]
        self._b_v2 = [us2] * L
        self._b_p = [self.p_grid] * L
        self._b_q = [self.q_grid] * L
        self._b_i2 = [self.i_grid * self.i_grid] * L
        self._b_bv2 = [self.bv * self.bv] * L
        self._live = L if self.usv > V_PRESENT_PU else 0

    # ================================================================ events
    def apply_event(self, ev):
        """Apply a scenario event now; False for kinds the plant does not handle."""
        self._quiet = 0
        kind = ev.get("kind")
        if kind == "grid_disconnect":
            self.breaker = False
        elif kind == "grid_reconnect":
            self.breaker = True
        elif kind == "grid_voltage":
            pu = float(ev["pu"])
            ramp = ev.get("ramp_s")
            self.uv_target = pu
            self._src_moving = True
            if ramp:
                self.uv_rate = abs(pu - self.uv) / float(ramp)
            else:
                self.uv = pu
                self.uv_rate = 0.0
        elif kind == "grid_frequency":
            hz = float(ev["hz"])
            rate = ev.get("ramp_hz_per_s")
            self.uf_target = hz
            self._src_moving = True
            if rate:
                self.uf_rate = abs(float(rate))
            else:
                self.uf = hz
                self.uf_rate = 0.0
        elif kind == "grid_phase_jump":
            self.uth = _wrap(self.uth + float(ev["deg"]) / _DEG)
        elif kind == "load_step":
            self._set_load(ev)
        elif kind == "ev_limits":
            if "max_charge_kw" in ev:
                self.max_charge_w = float(ev["max_charge_kw"]) * 1000.0
            if "max_discharge_kw" in ev:
                self.max_discharge_w = float(ev["max_discharge_kw"]) * 1000.0
            if "min_soc" in ev:
                self.min_soc = float(ev["min_soc"])
            self._dc_lim_changed = self.t_s
            self._truth.i_dc_limit_changed_s = self.t_s
            self.notify = True
        elif kind == "ev_session":
            # the EV leaves (or comes back): while away it takes and gives nothing, which it
            # announces as zero limits with SessionActive 0; it returns with the limits it left with
            active = bool(ev["active"])
            if active != self.session_active:
                self.session_active = active
                if active:
                    self.max_charge_w, self.max_discharge_w = self._limits_away
                else:
                    self._limits_away = (self.max_charge_w, self.max_discharge_w)
                    self.max_charge_w = self.max_discharge_w = 0.0
            self._dc_lim_changed = self.t_s
            self._truth.i_dc_limit_changed_s = self.t_s
            self.notify = True
        else:
            return False
        return True

    # ================================================================ commands (node layer)
    def relay_command(self, close):
        """RelayCloseReq. The contact changes relay_close_ms / relay_open_ms later."""
        close = bool(close)
        if close == self.rl_cmd:
            return
        self._quiet = 0
        self.rl_cmd = close
        self.notify = True
        self._rl_dirty = True
        if close == self.rl_conn:
            # reversed before the contact moved: the armature falls back, nothing changes
            self.rl_moving = False
            self.rl_timer = 0.0
        else:
            self.rl_moving = True
            self.rl_timer = self.relay_close_s if close else self.relay_open_s

    def inverter_command(self, mode, p_set_w, q_set_var):
        """GW_InverterCmd: mode 0 off, 1 grid-following, 2 grid-forming; P at the battery."""
        mode = int(mode)
        if mode < MODE_OFF or mode > MODE_GFM:
            mode = MODE_OFF
        p_set_w = float(p_set_w)
        q_set_var = float(q_set_var)
        if mode == self.cmd_mode and p_set_w == self.p_set and q_set_var == self.q_set and not self.f_timeout:
            return  # the cyclic command repeats itself: nothing changes
        self._quiet = 0
        self.cmd_mode = mode
        self.p_set = float(p_set_w)
        self.q_set = float(q_set_var)
        self.f_timeout = False
        if mode != MODE_GFL:
            self.f_acgrid = False
            self._win_since = -1.0
            self._restart_left = 0.0

    def inverter_limits(self, iac_max_a, idc_charge_max_a, idc_discharge_max_a):
        """GW_InverterLimits: the power stage's own current limits."""
        if (self.iac_max, self.idc_ch_max, self.idc_dis_max) == (
                max(0.0, float(iac_max_a)), max(0.0, float(idc_charge_max_a)), max(0.0, float(idc_discharge_max_a))):
            return
        self._quiet = 0
        self.iac_max = max(0.0, float(iac_max_a))
        self.idc_ch_max = max(0.0, float(idc_charge_max_a))
        self.idc_dis_max = max(0.0, float(idc_discharge_max_a))
        self.i_lim = min(self.iac_max, self.i_rated)

    def inverter_forming(self, v_set_v, f_set_hz, droop):
        """GW_InverterForming: voltage and frequency references for grid-forming."""
        self._quiet = 0
        self.v_set_pu = max(0.0, float(v_set_v)) / self.v_n
        self.w_set = _TWO_PI * float(f_set_hz)
        self.droop = bool(droop)

    def inverter_command_timeout(self):
        """The command frame went missing: the inverter drops to Off and flags it."""
        self._quiet = 0
        self.f_timeout = True
        self.cmd_mode = MODE_OFF
        self.f_acgrid = False
        self._win_since = -1.0
        self._restart_left = 0.0

    def clear_faults(self):
        """ClearFaults rising edge: clears the latched over-current fault."""
        self._quiet = 0
        self.f_oc = False
        self._oc_since = -1.0

    # ================================================================ the step
    def step(self, dt):
        """Advance the plant by dt seconds.

        A quiescent step (see _check_quiet) takes the short path right below. A full step runs
        the phases after it, in the order of docs/plant.md (the [n] in each phase's docstring is
        the section there). A phase that would change nothing is not called: its guard here
        tells that from the state. `still` stays True when the utility source, the relay and
        the inverter's loops all were at rest, which spares _check_quiet a second look at them.
        """
        if self._quiet and dt == self._dt:
            # A grid-tied step with everything but the power stage and the integrators at rest:
            # stiff grid (or, behind a source impedance, a stage at its references: the bus voltage
            # then stays where it is) at nominal frequency and constant voltage, relay at rest, PLL and outer
            # loop settled, no protection timer running, no command or event since the last
            # full step (each of those clears _quiet). The same arithmetic as the full step
            # below, without the parts that cannot change; when the stage itself sits at its
            # references (and no DC or state-of-charge limit is about to act) only the
            # integrators move.
            vb = self.v_batt
            ps = self.p_set
            stage = self.mode == MODE_GFL and not (
                self._gfl_fixed and -self.idc_dis_max * vb <= ps <= self.idc_ch_max * vb
                and not (ps < 0.0 and self.soc <= self.min_soc) and not (ps > 0.0 and self.soc >= 1.0))
            if stage and (self._quiet != 1 or self._zg):
                # a settled island, or a grid behind a source impedance: the stage moving would
                # move the bus; take the full step
                self._quiet = 0
                return self.step(dt)
            t0 = self.t_s
            n = self._n + 1
            self._n = n
            t = self._t0 + n * dt
            tr = self._truth
            if stage:
                uv = self.uv
                self._gfl_grid(dt, uv)
                pl, ql = self._qv[6], self._qv[7]
                p_grid = pl + self.p_ac
                q_grid = ql - self.q_inv
                i_grid = _sqrt(p_grid * p_grid + q_grid * q_grid) / (self.n_ph * self.v_n * uv) if uv > 0.01 else 0.0
                self.p_grid, self.q_grid, self.i_grid = p_grid, q_grid, i_grid
                qv = self._qv
                self._qv = (qv[0], qv[1], p_grid, q_grid, i_grid * i_grid, qv[5], pl, ql)
                i_ac = self.i_ac
                if i_ac > self._oc_a:
                    self._oc_since = t
                    self._quiet = 0
                usv = self.usv
                tr.p_ac_w = self.p_ac
                tr.q_inv_var = self.q_inv
                tr.i_ac_a = i_ac
                tr.p_grid_w = p_grid
                tr.q_grid_var = q_grid
                tr.i_grid_a = i_grid
                tr.i_export_a = -p_grid / (self._nvn * usv) if p_grid < 0.0 and usv > 0.01 else 0.0
                tr.bms_blocked = self._bms
            pb = self.p_batt
            temp = self.temp
            temp += (T_AMB_C + R_TH_K_PER_W * (1.0 - EFF) * (pb if pb > 0.0 else -pb) - temp) * self._a_th
            self.temp = temp
            if temp > OT_TRIP_C:
                self.f_ot = True
                self._quiet = 0
            if pb != 0.0:
                self._battery(pb, dt, t0, tr)
            soc = self.soc
            vb = self.v_batt
            k = self._k
            usv2, usth, p_grid, q_grid, i_grid2, v2 = self._qv[:6]
            self._b_v2[k] = usv2
            self._b_th[k] = usth
            self._b_p[k] = p_grid
            self._b_q[k] = q_grid
            self._b_i2[k] = i_grid2
            self._b_bv2[k] = v2
            k += 1
            self._k = 0 if k == self._L else k
            if usv2 > V_PRESENT_PU * V_PRESENT_PU:
                self._live += 1
            if p_grid > 0.0:
                self.e_import_wh += p_grid * dt / 3600.0
            elif p_grid < 0.0:
                self.e_export_wh -= p_grid * dt / 3600.0
            self.t_s = t
            tr.t_s = t
            tr.p_batt_w = pb
            tr.soc = soc
            tr.v_batt = vb
            tr.i_dc_a = pb / vb
            tr.i_dc_limit_a = (self.max_charge_w if self._dir > 0 else self.max_discharge_w) / vb
            return
        if dt != self._dt:
            self._set_dt(dt)
        t0 = self.t_s
        n = self._n + 1
        self._n = n
        t = self._t0 + n * dt
        tr = self._truth
        still = True
        if self._src_moving:
            self._utility_source(dt)
            still = False
        conn = self.rl_conn
        if not conn or self._sync_set or self.rl_moving or self._rl_dirty:  # open, just closed, or moving
            conn = self._relay_contact(dt, tr)
            still = False
        # what a settled island must find unchanged at the end (a bus tied to the grid needs none)
        prev = None if conn and self.breaker else (self.bv, self.bf, self.bth, self.v_f, self.pll_th)
        mode = self.mode
        # mode and state change only when the stage is not simply in its commanded mode (the state
        # follows from the mode but for a fault's Off) or a fault, trip or restart has a say
        if (self.cmd_mode != mode or self.state == ST_FAULT or self.f_oc or self.f_ot or self.f_acgrid
                or self._restart_left > 0.0):
            mode = self._inverter_mode(tr)
        self._solve_bus(dt, conn, mode)
        v = self.bv
        if v != self.v_f:
            self._outer_loop(v)
            still = False
        if self.pll_dw != 0.0 or self.bth != self.pll_th:
            self._pll(dt, v)
            still = False
        self._inverter_protection(dt, t, v, mode)
        pb = self.p_batt
        if pb != 0.0:
            self._battery(pb, dt, t0, tr)
        self._meter_windows(dt, v)
        self.t_s = t
        self._publish_truth(t, tr)
        if mode != MODE_GFM and not self._src_moving:  # else the next step is a full one anyway
            self._check_quiet(prev, conn, mode, still)

    # ---------------------------------------------------------------- the phases, in step()'s order
    def _utility_source(self, dt):
        """[1] The source's uv and uf one step along their ramps, and its angle uth advanced by uf - f_n."""
        f_n = self.f_n
        uv = self.uv
        if uv != self.uv_target:
            d = self.uv_target - uv
            r = self.uv_rate * dt
            if r <= 0.0 or -r <= d <= r:
                uv = self.uv_target
            else:
                uv += r if d > 0.0 else -r
            self.uv = uv
        uf = self.uf
        if uf != self.uf_target:
            d = self.uf_target - uf
            r = self.uf_rate * dt
            if r <= 0.0 or -r <= d <= r:
                uf = self.uf_target
            else:
                uf += r if d > 0.0 else -r
            self.uf = uf
        if uf != f_n:
            self.uth = (self.uth + (uf - f_n) * _TWO_PI * dt + _PI) % _TWO_PI - _PI
        self._src_moving = uf != f_n or uf != self.uf_target or uv != self.uv_target

    def _relay_contact(self, dt, tr):
        """[2] Sync values across the open contact as they stood before it moves; then the contact moves (returned)."""
        conn = self.rl_conn
        if not conn:
            if self.breaker:
                self.sync_dphi = (self.uth - self.bth + _PI) % _TWO_PI - _PI
                self.sync_df = self.uf - self.bf
                self.sync_dv = self.uv - self.bv
            else:
                self.sync_dphi = 0.0
                self.sync_df = 0.0
                self.sync_dv = -self.bv
            tr.sync_dphi_deg = self.sync_dphi * _DEG
            tr.sync_df_hz = self.sync_df
            tr.sync_dv_pu = self.sync_dv
        elif self._sync_set:
            self.sync_dphi = self.sync_df = self.sync_dv = 0.0
            tr.sync_dphi_deg = tr.sync_df_hz = tr.sync_dv_pu = 0.0
        self._sync_set = not conn
        if self.rl_moving or self._rl_dirty:
            self._rl_dirty = False
            if not self.rl_moving:
                pass
            elif self.rl_timer <= 1e-9:
                self.rl_moving = False
                conn = self.rl_conn = self.rl_cmd
                self.notify = True
            else:
                self.rl_timer -= dt
            tr.relay_closed = conn
            tr.relay_state = RELAY_MOVING if self.rl_moving else (RELAY_CLOSED if conn else RELAY_OPEN)
        return conn

    def _inverter_mode(self, tr):
        """[5] Mode and state from the command and the faults; a new mode starts bumplessly. Returns the mode."""
        cm = self.cmd_mode
        if self.f_oc or self.f_ot:
            mode, state = MODE_OFF, ST_FAULT
        elif cm == MODE_OFF:
            mode, state = MODE_OFF, ST_STANDBY
        elif cm == MODE_GFL:
            if self.f_acgrid or self._restart_left > 0.0:
                mode, state = MODE_OFF, ST_STANDBY
            else:
                mode, state = MODE_GFL, ST_RUNNING
        else:
            mode, state = MODE_GFM, ST_RUNNING
        if mode != self.mode:
            if mode == MODE_GFM:
                # bumpless start: the forming angle picks up the bus (or the PLL's memory of it)
                self.gfm_th = self.bth if self.bv > V_PRESENT_PU else self.pll_th
                self.gfm_pf = -self.p_ac
                self.gfm_qf = self.q_inv
            elif mode == MODE_OFF:
                self.p_batt = self.p_ac = self.q_inv = self.i_ac = 0.0
            if mode == MODE_GFL:
                # the outer loop starts from what the stage delivers now, at the present voltage
                self.p_ref, self.q_ref = self.p_batt, self.q_inv
                vf = self.bv
                self.v_f = V_FRT_LO_PU if vf < V_FRT_LO_PU else V_FRT_HI_PU if vf > V_FRT_HI_PU else vf
            self.mode = mode
            tr.inverter_mode = mode
        if state != self.state:
            self.state = state
            tr.inverter_state = state
        return mode

    def _solve_bus(self, dt, conn, mode):
        """[3, 4] This step's bus, stage output and load; the relay's utility side and the grid flows from them."""
        uv = self.uv
        if conn and self.breaker:
            if self._zg:
                self._solve_poc(dt, mode)
                return
            # stiff grid
            uf = self.uf
            uth = self.uth
            self.bv, self.bf, self.bth = uv, uf, uth
            if mode == MODE_GFL:
                self._gfl_grid(dt, uv)
            elif mode == MODE_GFM:
                self._gfm_grid(dt, uv, uth)
            elif self.p_ref or self.q_ref or self._bms:
                self._gfl_refs(dt, False)
            # the load (_load_pq, written out)
            u = uv * uv
            p0 = self.ld_p
            if self.ld_rlc:
                x = uf / self.f_n
                pl = p0 * u
                ql = pl * (self.ld_qf / x - self.ld_qc * x)
            elif u >= _CP_BREAK_U:
                pl, ql = p0, self.ld_q
            else:
                kk = u / _CP_BREAK_U
                pl, ql = p0 * kk, self.ld_q * kk
            self.p_load, self.q_load = pl, ql
            p_grid = pl + self.p_ac
            q_grid = ql - self.q_inv
            i_grid = _sqrt(p_grid * p_grid + q_grid * q_grid) / (self._nvn * uv) if uv > 0.01 else 0.0
            self.p_grid, self.q_grid, self.i_grid = p_grid, q_grid, i_grid
            # the utility side of the relay (the meter's and the relay's sensing point) is the bus
            self.usv, self.usf, self.usth = uv, uf, uth
        else:
            if mode == MODE_GFM:
                self._gfm_island(dt)
            else:
                self._gfl_island(dt, mode == MODE_GFL)
            self.p_grid = self.q_grid = self.i_grid = 0.0
            if conn:
                self.usv, self.usf, self.usth = self.bv, self.bf, self.bth
            elif self.breaker:
                self.usv, self.usf, self.usth = uv, self.uf, self.uth
            else:
                self.usv, self.usf = 0.0, self.uf

    def _solve_poc(self, dt, mode):
        """[3d] The bus tied to the grid behind the source impedance: the stage's references one
        step along, then the point-of-connection voltage at which the site's import and the drop
        it causes agree (_poc_v), and the stage's output, the load and the grid flows at it. The
        bus has the source's frequency and angle (the drop's angle shift is neglected)."""
        uv, uf, uth = self.uv, self.uf, self.uth
        x = uf / self.f_n
        # the references move by the slew and the limits, whatever the bus voltage; the output
        # _gfl_grid delivers at uv is replaced below by the one at the solved voltage
        if mode == MODE_GFL:
            self._gfl_grid(dt, uv)
        elif mode == MODE_OFF and (self.p_ref or self.q_ref or self._bms):
            self._gfl_refs(dt, False)
        v = self._poc_v(uv, x, mode, uth)
        if mode == MODE_GFL:
            self.p_batt, self.p_ac, self.q_inv, self.i_ac = self._gfl_at(v)
        elif mode == MODE_GFM:
            self._gfm_grid(dt, v, uth)
        pl, ql = self._load_pq(v * v, x)
        self.p_load, self.q_load = pl, ql
        p_grid = pl + self.p_ac
        q_grid = ql - self.q_inv
        i_grid = _sqrt(p_grid * p_grid + q_grid * q_grid) / (self._nvn * v) if v > 0.01 else 0.0
        self.p_grid, self.q_grid, self.i_grid = p_grid, q_grid, i_grid
        self.bv, self.bf, self.bth = v, uf, uth
        # the meter and the relay sense the point of connection: the bus
        self.usv, self.usf, self.usth = v, uf, uth

    def _poc_flows(self, v, x, mode, th):
        """The site's import (W, var) with the bus at v (pu), frequency ratio x and angle th: the
        load plus the stage at its present references. Changes nothing."""
        pl, ql = self._load_pq(v * v, x)
        if mode == MODE_GFL:
            _, pac, q, _ = self._gfl_at(v)
            return pl + pac, ql - q
        if mode == MODE_GFM:
            pd, q, _, _, _ = self._gfm_grid_at(v, th)
            return pl - pd, ql - q
        return pl + self.p_ac, ql - self.q_inv

    def _poc_v(self, uv, x, mode, th):
        """The point-of-connection voltage V (pu) behind the source impedance R + jX with the
        source at uv: the solution of  V = uv - (R*P(V) + X*Q(V)) / (n_ph * V_n^2 * uv)  for the
        site's import P, Q at V (_poc_flows), to 1e-12 pu, clipped to 0..U_MAX_PU; a function of
        the state alone, so a state at rest gives the same V at every step (docs/plant.md 3d)."""
        if uv <= 0.01:
            return uv  # no source left to drop from (the flows vanish with it)
        kr = self._kr / uv
        kx = self._kx / uv
        # Secant iteration on F(V) = uv - drop(V) - V from V = uv. The import is affine in V for
        # a current-source stage and a constant-power load (one secant step is exact), nearly
        # so for an impedance load; |dF/dV + 1| is the loop gain R*dP/dV + X*dQ/dV over
        # n_ph*V_n^2, about 0.3 at 1 ohm and 11 kVA. A gain past 1 (a feeder too weak for the
        # stage's current) would make F rise with V: the slope is held at -0.1 so that the
        # iteration stays bounded rather than jump.
        v0 = uv
        p, q = self._poc_flows(v0, x, mode, th)
        f0 = -(kr * p + kx * q)
        v1 = v0 + f0
        for _ in range(8):
            if v1 < 0.0:
                v1 = 0.0
            elif v1 > U_MAX_PU:
                v1 = U_MAX_PU
            if v1 == v0:
                break
            p, q = self._poc_flows(v1, x, mode, th)
            f1 = uv - kr * p - kx * q - v1
            if -1e-12 < f1 < 1e-12:
                break
            slope = (f1 - f0) / (v1 - v0)
            if slope > -0.1:
                slope = -0.1
            v0, f0 = v1, f1
            v1 -= f1 / slope
        else:
            v1 = v0  # not converged in 8 steps (a feeder too weak for the site): the last evaluated point
        return v1

    def _outer_loop(self, v):
        """[5] The outer loop's voltage filter v_f follows v inside the continuous-operation band, holds outside."""
        if V_FRT_LO_PU <= v <= V_FRT_HI_PU:
            vf = self.v_f
            if vf != v:
                vn = vf + (v - vf) * self._a_vf
                if vn == vf and self._zg:
                    # The filter's step is below vf's rounding: it has arrived, but would stay a few
                    # ulps from v for ever, and behind a source impedance every change of the site's
                    # flows moves v, so no step would ever again be quiescent. The stiff grid keeps
                    # the filter as it was (its numbers are unchanged).
                    vn = v
                self.v_f = vn

    def _pll(self, dt, v):
        """[5] The PLL tracks the bus angle while the bus voltage v has a phase, else runs on at its frequency."""
        pll_th = self.pll_th
        dw = self.pll_dw
        if v > V_PRESENT_PU:
            bth = self.bth
            if bth != pll_th or dw != 0.0:
                e = (bth - pll_th + _PI) % _TWO_PI - _PI
                dw += self._ki * e * dt
                if dw > 100.0:
                    dw = 100.0
                elif dw < -100.0:
                    dw = -100.0
                self.pll_dw = dw
                self.pll_th = (pll_th + (dw + self._kp * e) * dt + _PI) % _TWO_PI - _PI
        elif dw != 0.0:
            self.pll_th = (pll_th + dw * dt + _PI) % _TWO_PI - _PI

    def _inverter_protection(self, dt, t, v, mode):
        """[5] AC window and restart, AC-loss event, over-current timer, heatsink and over-temperature, as of t."""
        cm = self.cmd_mode
        if cm == MODE_GFL and not self.f_timeout:
            f_n = self.f_n
            f_pll = f_n + self.pll_dw / _TWO_PI
            if v < AC_WIN_LO_PU or v > AC_WIN_HI_PU or f_pll - f_n > AC_WIN_F_HZ or f_n - f_pll > AC_WIN_F_HZ:
                if self._win_since < 0.0:
                    self._win_since = t
                if t - self._win_since >= AC_WIN_TRIP_S - 1e-9:
                    self.f_acgrid = True
                    self._restart_left = 0.0
            else:
                self._win_since = -1.0
                if self.f_acgrid:
                    self.f_acgrid = False
                    self._restart_left = AC_RESTART_S
                elif self._restart_left > 0.0:
                    self._restart_left -= dt
                    if self._restart_left < 1e-9:
                        self._restart_left = 0.0
        if v < AC_LOSS_PU and mode != MODE_GFM:
            if self._loss_since < 0.0:
                self._loss_since = t
            if self._loss_armed and t - self._loss_since >= AC_LOSS_CONFIRM_S - 1e-9:
                self._loss_armed = False
                self._loss_pending = {"reason": LOSS_UNDERVOLTAGE, "voltage_v": v * self.v_n}
                self.notify = True
        else:
            self._loss_since = -1.0
            if v >= AC_LOSS_REARM_PU:
                self._loss_armed = True
        if self.i_ac > self._oc_a:
            if self._oc_since < 0.0:
                self._oc_since = t
            if t - self._oc_since >= OC_TRIP_S - 1e-9:
                self.f_oc = True
        else:
            self._oc_since = -1.0
        pb = self.p_batt
        temp = self.temp
        temp += (T_AMB_C + _K_TH * (pb if pb > 0.0 else -pb) - temp) * self._a_th
        self.temp = temp
        if temp > OT_TRIP_C:
            self.f_ot = True
        elif temp < OT_CLEAR_C:
            self.f_ot = False

    def _battery(self, pb, dt, t0, tr):
        """[5] soc and v_batt after dt at battery power pb (W, + charging); a new direction is a DC limit change."""
        soc = self.soc + pb * dt / self.cap_j
        if soc < 0.0:
            soc = 0.0
        elif soc > 1.0:
            soc = 1.0
        self.soc = soc
        self.v_batt = V_BATT_0 + V_BATT_SOC * soc
        if pb > 1e-3:
            d = 1
        elif pb < -1e-3:
            d = -1
        else:
            d = self._dir
        if d != self._dir:
            self._dir = d
            self._dc_lim_changed = t0
            tr.i_dc_limit_changed_s = t0

    def _meter_windows(self, dt, v):
        """[6] This step's samples in the meter's ring buffers (evaluated when read) and the energy registers."""
        usv = self.usv
        p_grid = self.p_grid
        i_grid = self.i_grid
        k = self._k
        self._b_v2[k] = usv * usv
        self._b_th[k] = self.usth
        self._b_p[k] = p_grid
        self._b_q[k] = self.q_grid
        self._b_i2[k] = i_grid * i_grid
        self._b_bv2[k] = v * v
        k += 1
        self._k = 0 if k == self._L else k
        if usv > V_PRESENT_PU:
            self._live += 1
        else:
            self._live = 0
        if p_grid > 0.0:
            self.e_import_wh += p_grid * dt / 3600.0
        elif p_grid < 0.0:
            self.e_export_wh -= p_grid * dt / 3600.0

    def _publish_truth(self, t, tr):
        """[7] Every truth field a step can move, as of t (the others are written where they change)."""
        pb = self.p_batt
        vb = self.v_batt
        usv = self.usv
        p_grid = self.p_grid
        tr.t_s = t
        tr.home_v_pu = self.bv
        tr.home_f_hz = self.bf
        tr.utility_side_v_pu = usv
        tr.grid_v_pu = self.uv
        tr.grid_f_hz = self.uf
        tr.breaker_closed = self.breaker
        tr.p_batt_w = pb
        tr.p_ac_w = self.p_ac
        tr.q_inv_var = self.q_inv
        tr.i_ac_a = self.i_ac
        tr.i_dc_a = pb / vb
        tr.p_load_w = self.p_load
        tr.q_load_var = self.q_load
        tr.p_grid_w = p_grid
        tr.q_grid_var = self.q_grid
        tr.i_grid_a = self.i_grid
        tr.i_export_a = -p_grid / (self._nvn * usv) if p_grid < 0.0 and usv > 0.01 else 0.0
        tr.soc = self.soc
        tr.v_batt = vb
        tr.bms_blocked = self._bms
        tr.i_dc_limit_a = (self.max_charge_w if self._dir > 0 else self.max_discharge_w) / vb

    def _check_quiet(self, prev, conn, mode, still):
        """[9] _quiet and _qv set when the next step may take step()'s short path (else _quiet stays 0)."""
        # Called with the utility source at rest and an inverter that does not form the grid.
        # prev: (bv, bf, bth, v_f, pll_th) as the step found them, None for a bus tied to the grid;
        # still: step() found the source, the relay and the inverter's loops at rest. The tests
        # that fail most often come first.
        if not (still or not self.rl_moving and not self._rl_dirty):
            return  # the relay moves
        v = self.bv
        tied = conn and self.breaker
        if tied:
            if not (still or not self._sync_set and v == self.v_f and self.bth == self.pll_th and self.pll_dw == 0.0):
                return  # the inverter's loops have not settled on the grid
        elif not ((v, self.bf, self.bth, self.v_f, self.pll_th) == prev and self.pll_dw == 0.0):
            return  # the island moved
        cm = self.cmd_mode
        if self.f_oc or self.f_ot or cm == MODE_OFF or (cm == MODE_GFL and (self.f_acgrid or self._restart_left > 0.0)):
            next_mode = MODE_OFF
        else:
            next_mode = cm
        if not (next_mode == mode and self._oc_since < 0.0 and not self.f_ot
                and (mode == MODE_GFL or
                     mode == MODE_OFF and not (self.p_ref or self.q_ref or self.p_batt or self._bms))):
            return  # the mode may change, or a stopped stage has not settled at zero
        usv = self.usv
        if tied:
            if self._win_since < 0.0 and not self.f_acgrid and self._restart_left == 0.0 and self._loss_since < 0.0:
                # grid-tied: the bus is the grid, whatever the stage does
                i_grid = self.i_grid
                self._quiet = 1
                self._qv = (usv * usv, self.usth, self.p_grid, self.q_grid, i_grid * i_grid, v * v,
                            self.p_load, self.q_load)
        elif (mode == MODE_OFF or self._gfl_fixed) and self._restart_left == 0.0 \
                and (cm != MODE_GFL or self.f_timeout or (self._win_since < 0.0) != self.f_acgrid) \
                and (self._loss_since < 0.0 or not self._loss_armed):
            # a settled island (or a dead bus): this step changed nothing that feeds back,
            # so the next one only moves the integrators, as long as the stage holds still
            self._quiet = 2
            self._qv = (usv * usv, self.usth, 0.0, 0.0, 0.0, v * v, self.p_load, self.q_load)

    # ---------------------------------------------------------------- power stage
    def _gfl_refs(self, dt, running):
        """Grid-following outer loop: the slewed P/Q references, clipped to the DC limits and
        to the AC current limit at the outer loop's voltage v_f. False (and outputs 0) when
        the stage is not running. The current references are p_ac_ref / (n*V_n*v_f) and
        q_ref / (n*V_n*v_f); the delivered powers scale with v / v_f (docs/plant.md 5)."""
        if not running:
            self.p_batt = self.p_ac = self.q_inv = self.i_ac = 0.0
            self.p_ref = self.q_ref = self._pac_ref = 0.0
            self._bms = False
            return False
        vb = self.v_batt
        pt = self.p_set
        hi = self.idc_ch_max * vb
        lo = -self.idc_dis_max * vb
        if pt > hi:
            pt = hi
        elif pt < lo:
            pt = lo
        bms = False
        if pt < 0.0 and self.soc <= self.min_soc:
            pt = 0.0
            bms = True
        elif pt > 0.0 and self.soc >= 1.0:
            pt = 0.0
        self._bms = bms
        st = self.slew * dt
        p = self.p_ref
        d = pt - p
        if d > st:
            p += st
        elif d < -st:
            p -= st
        else:
            p = pt
        if bms and p < 0.0:
            p = 0.0  # the EV's discharge contactor acts at once
        q = self.q_ref
        d = self.q_set - q
        if d > st:
            q += st
        elif d < -st:
            q -= st
        else:
            q = self.q_set
        fixed = p == pt and q == self.q_set and not bms
        pac = p / EFF if p > 0.0 else p * EFF
        if self.limiter:
            cap = self.i_lim * self.v_f * self.v_n * self.n_ph
            s = _sqrt(pac * pac + q * q)
            if s > cap:
                kk = cap / s
                pac *= kk
                q *= kk
                p = pac * EFF if pac > 0.0 else pac / EFF
                fixed = False
        self._gfl_fixed = fixed
        self.p_ref, self.q_ref, self._pac_ref = p, q, pac
        return True

    def _gfl_grid(self, dt, v):
        """The running stage on a bus held at v (pu) by the grid: _gfl_refs(dt, True), then the
        current references delivered into v, with the DC stage's current limit acting at once
        on the battery power (the grid-tied step's hot path, one call)."""
        vb = self.v_batt
        pt = self.p_set
        hi = self.idc_ch_max * vb
        lo = -self.idc_dis_max * vb
        if pt > hi:
            pt = hi
        elif pt < lo:
            pt = lo
        bms = False
        if pt < 0.0 and self.soc <= self.min_soc:
            pt = 0.0
            bms = True
        elif pt > 0.0 and self.soc >= 1.0:
            pt = 0.0
        self._bms = bms
        p = self.p_ref
        q = self.q_ref
        qt = self.q_set
        if p != pt or q != qt:
            st = self.slew * dt
            d = pt - p
            if d > st:
                p += st
            elif d < -st:
                p -= st
            else:
                p = pt
            d = qt - q
            if d > st:
                q += st
            elif d < -st:
                q -= st
            else:
                q = qt
        if bms and p < 0.0:
            p = 0.0  # the EV's discharge contactor acts at once
        pac = p / EFF if p > 0.0 else p * EFF
        vf = self.v_f
        nvn = self._nvn
        fixed = p == pt and q == qt and not bms
        if self.limiter:
            cap = self.i_lim * vf * nvn
            s = _sqrt(pac * pac + q * q)
            if s > cap:
                kk = cap / s
                pac *= kk
                q *= kk
                p = pac * EFF if pac > 0.0 else pac / EFF
                fixed = False
        self._gfl_fixed = fixed
        self.p_ref, self.q_ref, self._pac_ref = p, q, pac
        self.p_batt, self.p_ac, self.q_inv, self.i_ac = self._gfl_at(v)

    def _gfl_at(self, v):
        """What the running grid-following stage delivers at its present references into a bus
        held at v (pu): (p_batt, p_ac, q_inv, i_ac), the current references into v with the DC
        stage's current limit acting at once on the battery power. Changes nothing."""
        vb = self.v_batt
        hi = self.idc_ch_max * vb
        lo = -self.idc_dis_max * vb
        p, q, pac = self.p_ref, self.q_ref, self._pac_ref
        vf = self.v_f
        nvn = self._nvn
        i_d = pac / (nvn * vf)
        i_q = q / (nvn * vf)
        if v != vf:
            m = v / vf
            p *= m
            pac *= m
            q *= m
        if p > hi or p < lo:
            p = hi if p > hi else lo
            pac = p / EFF if p > 0.0 else p * EFF
            i_d = pac / (nvn * v)
        return p, pac, q, _sqrt(i_d * i_d + i_q * i_q)

    def _gfm_refs(self):
        if self.droop:
            w = self.w_set - DROOP_P * self.w_n * self.gfm_pf / self.s_rated
            e = self.v_set_pu - DROOP_Q * self.gfm_qf / self.s_rated
            return w, (e if e > 0.0 else 0.0)
        return self.w_set, self.v_set_pu

    def _gfm_island(self, dt):
        """Grid-forming source alone on the bus: droop, current and power limits."""
        # the references (_gfm_refs, written out: this is the forming island's every step)
        if self.droop:
            w = self.w_set - DROOP_P * self.w_n * self.gfm_pf / self.s_rated
            e = self.v_set_pu - DROOP_Q * self.gfm_qf / self.s_rated
            e = e if e > 0.0 else 0.0
        else:
            w, e = self.w_set, self.v_set_pu
        f = w / _TWO_PI
        x = f / self.f_n
        # AC power the stage can deliver / absorb within its DC limits and the BMS
        soc = self.soc
        vb = self.v_batt
        pdis = 0.0 if soc <= self.min_soc else self.idc_dis_max * vb * EFF
        pch = 0.0 if soc >= 1.0 else self.idc_ch_max * vb / EFF
        vt = e
        p0 = self.ld_p
        nvn = self.n_ph * self.v_n
        if self.ld_rlc:
            if p0 > pdis:
                vt = min(vt, _sqrt(pdis / p0))
            if self.limiter:
                b = self.ld_qf / x - self.ld_qc * x
                vil = nvn * self.i_lim / (p0 * _sqrt(1.0 + b * b))
                if vil < vt:
                    vt = vil
        else:
            s0 = self.ld_s
            if p0 > pdis:
                vt = min(vt, CP_BREAK_PU * _sqrt(pdis / p0))
            if self.limiter and s0 > 0.0:
                i_lim = self.i_lim
                # the impedance branch at the current limit: where a current-limited source
                # holds a load it cannot carry at CP_BREAK_PU (its peak current)
                vil = i_lim * CP_BREAK_PU * CP_BREAK_PU * nvn / s0
                if vt >= CP_BREAK_PU:
                    i_at = s0 / (nvn * vt)
                else:
                    i_at = vt * s0 / (CP_BREAK_PU * CP_BREAK_PU * nvn)
                if i_at > i_lim:
                    vt = vil
                elif vt > vil and vil < CP_BREAK_PU and self.bv * nvn * i_lim < s0:
                    # vt is above the band where the load draws more than the limit (vil up to
                    # s0 / (nvn * i_lim)) and the bus below it: the build-up would have to pass
                    # the load's peak current, so it stalls at vil (cold-load pickup)
                    vt = vil
        v = self.bv
        # the current loop pulls the voltage down at once; voltage build-up takes TAU_V_GFM_S
        v = vt if vt <= v else vt + (v - vt) * self._e_vgfm
        u = v * v
        # the load at u and x (_load_pq, written out)
        if self.ld_rlc:
            pl = p0 * u
            ql = pl * (self.ld_qf / x - self.ld_qc * x)
        elif u >= _CP_BREAK_U:
            pl, ql = p0, self.ld_q
        else:
            k = u / _CP_BREAK_U
            pl, ql = p0 * k, self.ld_q * k
        pd = pl
        self._bms = p0 > 0.0 and soc <= self.min_soc  # the load wants power the BMS refuses
        if pd < -pch:
            pd = -pch  # a generating 'load' beyond what the battery may absorb: surplus not modelled
        i = _sqrt(pd * pd + ql * ql) / (nvn * v) if v > 0.01 else 0.0
        pac = -pd
        self.p_ac = pac
        self.p_batt = pac * EFF if pac > 0.0 else pac / EFF
        self.q_inv = ql
        self.i_ac = i
        a = self._a_droop
        self.gfm_pf += (pd - self.gfm_pf) * a
        self.gfm_qf += (ql - self.gfm_qf) * a
        th = (self.gfm_th + (w - self.w_n) * dt + _PI) % _TWO_PI - _PI
        self.gfm_th = th
        self.bv, self.bf, self.bth = v, f, th
        self.p_load, self.q_load = pl, ql

    def _gfm_grid(self, dt, v, th_grid):
        """Grid-forming source behind X_COUPLING_PU, in parallel with the grid's bus at v, th_grid."""
        pd, q, i, bms, w = self._gfm_grid_at(v, th_grid)
        self._bms = bms
        pac = -pd
        self.p_ac = pac
        self.p_batt = pac * EFF if pac > 0.0 else pac / EFF
        self.q_inv = q
        self.i_ac = i
        a = self._a_droop
        self.gfm_pf += (pd - self.gfm_pf) * a
        self.gfm_qf += (q - self.gfm_qf) * a
        self.gfm_th = (self.gfm_th + (w - self.w_n) * dt + _PI) % _TWO_PI - _PI

    def _gfm_grid_at(self, v, th_grid):
        """What the forming stage delivers against a bus at v (pu), th_grid at its present angle
        and droop references: (P_d, Q, I, bms, omega) with P_d the AC power delivered within the
        current and DC limits, bms True when the EV's BMS refuses the discharge. Changes nothing."""
        w, e = self._gfm_refs()
        dl = (self.gfm_th - th_grid + _PI) % _TWO_PI - _PI
        cd = _cos(dl)
        sd = _sin(dl)
        S = self.s_rated
        pd = e * v * sd / X_COUPLING_PU * S
        q = (e * v * cd - v * v) / X_COUPLING_PU * S
        ipu2 = e * e + v * v - 2.0 * e * v * cd
        i = _sqrt(ipu2 if ipu2 > 0.0 else 0.0) / X_COUPLING_PU * self.i_rated
        if self.limiter and i > self.i_lim:
            kk = self.i_lim / i
            pd *= kk
            q *= kk
            i = self.i_lim
        # AC power the stage can deliver / absorb within its DC limits and the BMS
        soc = self.soc
        vb = self.v_batt
        pdis = 0.0 if soc <= self.min_soc else self.idc_dis_max * vb * EFF
        pch = 0.0 if soc >= 1.0 else self.idc_ch_max * vb / EFF
        bms = pd > 0.0 and soc <= self.min_soc
        if pd > pdis:
            pd = pdis
        elif pd < -pch:
            pd = -pch
        return pd, q, i, bms, w

    def _gfl_island(self, dt, running):
        """Bus without a voltage source: the inverter (GFL current source, or off) and the
        load share the bus's stored energy; the frequency follows the reactive balance."""
        v = self.bv
        nvn = self.n_ph * self.v_n
        vc = _INF
        s = 0.0
        if self._gfl_refs(dt, running):
            # delivered P = a * V, Q = b * V (V in pu): the current references into the bus
            vf = self.v_f
            a = -self._pac_ref / vf
            b = self.q_ref / vf
            # the DC stage's current limit holds the delivered power at s wherever a * V would
            # pass it, i.e. above vc = s / a (docs/plant.md 3a, 5); it acts within the step
            if a > 0.0:
                s = self.idc_dis_max * self.v_batt * EFF
                vc = s / a
            elif a < 0.0:
                s = -self.idc_ch_max * self.v_batt / EFF
                vc = s / a
        else:
            a = b = 0.0
        vn = self._island_v(v, a, dt, vc, s)
        if vn > vc:
            pd = s  # at the DC limit: the active current falls as the voltage rises
            qd = b * vn
            ia = pd / (nvn * vn)
            self._gfl_fixed = False
        else:
            pd = a * vn
            qd = b * vn
            ia = a / nvn
        u = vn * vn
        f = self.bf
        f_n = self.f_n
        x = f / f_n
        # the load at u and x (_load_pq, written out)
        p0 = self.ld_p
        if self.ld_rlc:
            pl = p0 * u
            ql = pl * (self.ld_qf / x - self.ld_qc * x)
        elif u >= _CP_BREAK_U:
            pl, ql = p0, self.ld_q
        else:
            kk = u / _CP_BREAK_U
            pl, ql = p0 * kk, self.ld_q * kk
        if vn >= U_MAX_PU and pd > pl:
            pd = pl  # surplus the bus cannot take: the stage's DC link curtails it
        if running:
            pac = -pd
            self.p_ac = pac
            self.p_batt = pac * EFF if pac > 0.0 else pac / EFF
            self.q_inv = qd
            ib = b / nvn
            self.i_ac = _sqrt(ia * ia + ib * ib)
        if u > V_PRESENT_PU * V_PRESENT_PU:
            if self.ld_rlc and (self.ld_qc > 1e-12 or self.ld_qf > 1e-12):
                qc = self.ld_qc
                qf = self.ld_qf
                aa = qd / (u * p0)
                if qc > 1e-12:
                    disc = aa * aa + 4.0 * qc * qf
                    xs = (-aa + _sqrt(disc)) / (2.0 * qc) if disc > 0.0 else ISLAND_F_MIN
                elif aa > 1e-12:
                    xs = qf / aa
                else:
                    xs = ISLAND_F_MAX
                if xs < ISLAND_F_MIN:
                    xs = ISLAND_F_MIN
                elif xs > ISLAND_F_MAX:
                    xs = ISLAND_F_MAX
                fs = xs * f_n
                f = fs + (f - fs) * self._e_pll
            elif pd > 1.0 and pl > 1.0:
                f += F_DRIFT_HZ_S_PER_RAD * (_atan2(ql, pl) - _atan2(qd, pd)) * dt
                if f < ISLAND_F_MIN * f_n:
                    f = ISLAND_F_MIN * f_n
                elif f > ISLAND_F_MAX * f_n:
                    f = ISLAND_F_MAX * f_n
        self.bth = (self.bth + (f - f_n) * _TWO_PI * dt + _PI) % _TWO_PI - _PI
        self.bv, self.bf = vn, f
        self.p_load, self.q_load = pl, ql

    def _island_v(self, v, a, dt, vc=_INF, s=0.0):
        """Bus voltage (pu) after dt of  2*W0*V*dV/dt = P_d(V) - P_L(V)  (energy balance). The
        inverter is a current source delivering P_d = a*V up to vc; above vc its DC stage's
        current limit holds it at P_d = s (= a*vc). Solved exactly per region: a current
        source into an impedance (RLC, or constant power below CP_BREAK_PU) makes the equation
        linear in V; into constant power above the breakpoint it has the closed form
        x + P*ln|x| = x0 + P*ln|x0| + a^2*t/(2*W0) with x = a*V - P; the constant power s makes
        it linear in V^2. The voltage moves monotonically within a step: one that crosses
        CP_BREAK_PU or vc continues in the other region."""
        w2 = 2.0 * self._w0
        p0 = self.ld_p
        vb = CP_BREAK_PU
        rlc = self.ld_rlc
        t = dt
        cp = not rlc and v >= vb
        lim = v >= vc
        for _ in range(5):
            if lim:
                # the stage at its DC limit: W0 * d(V^2)/dt = s - P_L(V)
                u = v * v
                if p0 <= 0.0 or cp:
                    # constant load power (none, or constant power above the breakpoint)
                    r = 2.0 * (s - (p0 if p0 > 0.0 else 0.0)) / w2
                    if r == 0.0:
                        break
                    if r < 0.0:
                        lo = vb if cp and vb > vc else vc
                        tb = (lo * lo - u) / r
                        if tb < t:
                            v = lo
                            t -= tb
                            lim = lo > vc
                            cp = cp and lo > vb
                            continue
                    u += r * t
                else:
                    # an impedance: V^2 -> s/g, first-order with the rate g/W0
                    g = p0 if rlc else p0 / (vb * vb)
                    kk = 2.0 * g / w2
                    ui = s / g
                    if u > ui:
                        ub = vc * vc
                        if ui < ub:
                            tb = _log((u - ui) / (ub - ui)) / kk
                            if tb < t:
                                v = vc
                                t -= tb
                                lim = False
                                continue
                    elif u < ui:
                        if not rlc:
                            ub = vb * vb
                            if ui > ub:
                                tb = _log((u - ui) / (ub - ui)) / kk
                                if tb < t:
                                    v = vb
                                    t -= tb
                                    cp = True
                                    continue
                    else:
                        break
                    u = ui + (u - ui) * _exp(-kk * t)
                v = _sqrt(u) if u > 0.0 else 0.0
                break
            if p0 <= 0.0:
                vn = v + a * t / w2  # no load: the current charges or drains the bus capacitance
                if vn > vc:
                    t -= (vc - v) * w2 / a
                    v = vc
                    lim = True
                    continue
                v = vn
                break
            if not cp:
                g = p0 if rlc else p0 / (vb * vb)
                k = g / w2
                vi = a / g
                if vi < 0.0:
                    # a current drawn from the bus: it is empty after t0
                    t0 = _log((v - vi) / -vi) / k
                    if t0 <= t:
                        v = 0.0
                        break
                else:
                    # rising towards vi: the breakpoint or the DC limit, whichever comes first
                    vup = vc if rlc or vc < vb else vb
                    if vi > vup:
                        tb = _log((v - vi) / (vup - vi)) / k
                        if tb < t:
                            v = vup
                            t -= tb
                            cp = not rlc and vup >= vb
                            lim = vup >= vc
                            continue
                v = vi + (v - vi) * _exp(-k * t)
                break
            # constant power above the breakpoint
            x0 = a * v - p0
            if x0 == 0.0:
                break  # balanced: an (unstable) equilibrium
            if a == 0.0:
                u = v * v - 2.0 * p0 * t / w2
                tb = (v * v - vb * vb) * w2 / (2.0 * p0)
                if tb < t:
                    v = vb
                    t -= tb
                    cp = False
                    continue
                v = _sqrt(u)
                break
            al = a * a / w2
            if x0 < 0.0:
                xb = a * vb - p0
                tb = ((xb - x0) + p0 * _log(xb / x0)) / al
                if tb < t:
                    v = vb
                    t -= tb
                    cp = False
                    continue
            # x(t) = x0 * e^y with x0*(e^y - 1) + P*y = al*t: Newton, monotone from y = 0
            c = al * t
            y = 0.0
            for _ in range(50):
                ey = _exp(y)
                h = x0 * (ey - 1.0) + p0 * y - c
                dy = h / (x0 * ey + p0)
                y -= dy
                if -1e-13 < dy < 1e-13:
                    break
            vn = (x0 * _exp(y) + p0) / a
            if vn > vc:
                # rising (x0 > 0, a > 0) past the DC limit: the rest of the step at constant power
                xc = a * vc - p0
                t -= ((xc - x0) + p0 * _log(xc / x0)) / al
                if t < 0.0:
                    t = 0.0
                v = vc
                lim = True
                continue
            v = vn
            break
        if v < 1e-6:
            v = 0.0  # below a microvolt per volt: gone
        elif v > U_MAX_PU:
            v = U_MAX_PU
        return v

    # ---------------------------------------------------------------- truth
    def _publish(self):
        """Every truth field from the state (at construction; a step's _publish_truth refreshes what moves)."""
        tr = self._truth
        vb = self.v_batt
        tr.t_s = self.t_s
        tr.home_v_pu = self.bv
        tr.home_f_hz = self.bf
        tr.utility_side_v_pu = self.usv
        tr.grid_v_pu = self.uv
        tr.grid_f_hz = self.uf
        tr.breaker_closed = self.breaker
        tr.relay_closed = self.rl_conn
        tr.relay_state = RELAY_MOVING if self.rl_moving else (RELAY_CLOSED if self.rl_conn else RELAY_OPEN)
        tr.inverter_mode = self.mode
        tr.inverter_state = self.state
        tr.p_batt_w = self.p_batt
        tr.p_ac_w = self.p_ac
        tr.q_inv_var = self.q_inv
        tr.i_ac_a = self.i_ac
        tr.i_dc_a = self.p_batt / vb
        tr.p_load_w = self.p_load
        tr.q_load_var = self.q_load
        pg = self.p_grid
        tr.p_grid_w = pg
        tr.q_grid_var = self.q_grid
        tr.i_grid_a = self.i_grid
        usv = self.usv
        tr.i_export_a = -pg / (self.n_ph * self.v_n * usv) if pg < 0.0 and usv > 0.01 else 0.0
        tr.soc = self.soc
        tr.v_batt = vb
        tr.bms_blocked = self._bms
        tr.i_dc_limit_a = (self.max_charge_w if self._dir > 0 else self.max_discharge_w) / vb
        tr.i_dc_limit_changed_s = self._dc_lim_changed
        tr.i_ac_limit_a = self.i_rated
        tr.i_ac_limit_changed_s = 0.0
        tr.i_export_limit_a = None if self.export_limit_w is None else self.export_limit_w / (self.n_ph * self.v_n)
        tr.i_export_limit_changed_s = 0.0
        tr.i_fuse_limit_a = self.main_fuse_a
        tr.sync_dphi_deg = self.sync_dphi * _DEG
        tr.sync_df_hz = self.sync_df
        tr.sync_dv_pu = self.sync_dv

    def truth(self):
        """The plant's true state after the last step (a Truth, refreshed in place)."""
        return self._truth

    # ================================================================ measurements
    def _mean(self, buf, n):
        k = self._k
        if k >= n:
            return sum(buf[k - n:k]) / n
        return (sum(buf[k - n:]) + sum(buf[:k])) / n

    def _freq_at(self, j):
        """Meter frequency from the phase advance over the window ending at index j."""
        b = self._b_th
        nf = self._nf
        d = (b[j] - b[j - nf] + _PI) % _TWO_PI - _PI  # negative indices wrap in the ring
        return self.f_n + d / (_TWO_PI * nf * self._dt)

    def meter_values(self):
        """Grid meter at the point of connection (utility side of the site relay)."""
        k = self._k
        nc = self._nc
        b_v2 = self._b_v2
        split = k < nc  # the one-cycle window wraps around the ring's end
        if split:
            v_rms = _sqrt((sum(b_v2[k - nc:]) + sum(b_v2[:k])) / nc)
        else:
            v_rms = _sqrt(sum(b_v2[k - nc:k]) / nc)
        live = self._live
        L = self._L
        j = k - 1
        if j < 0:
            j += L
        nf, nr = self._nf, self._nr
        b_th = self._b_th
        if live > nf and v_rms > V_PRESENT_PU:
            c = _TWO_PI * nf * self._dt
            f_n = self.f_n
            f = f_n + ((b_th[j] - b_th[j - nf] + _PI) % _TWO_PI - _PI) / c  # negative indices wrap in the ring
            if live > nf + nr:
                jo = j - nr
                if jo < 0:
                    jo += L
                rocof = (f - (f_n + ((b_th[jo] - b_th[jo - nf] + _PI) % _TWO_PI - _PI) / c)) / (nr * self._dt)
            else:
                rocof = 0.0
        else:
            f = rocof = 0.0
        if live > 0:
            ph = b_th[j] * _DEG
            if ph >= 180.0:
                ph -= 360.0
        else:
            ph = 0.0
        if v_rms > V_PRESENT_PU:
            bp, bq, bi = self._b_p, self._b_q, self._b_i2
            if split:
                p = (sum(bp[k - nc:]) + sum(bp[:k])) / nc
                q = (sum(bq[k - nc:]) + sum(bq[:k])) / nc
                i = _sqrt((sum(bi[k - nc:]) + sum(bi[:k])) / nc)
            else:
                p = sum(bp[k - nc:k]) / nc
                q = sum(bq[k - nc:k]) / nc
                i = _sqrt(sum(bi[k - nc:k]) / nc)
        else:
            p = q = i = 0.0
        return {"voltage_v": v_rms * self.v_n, "frequency_hz": f, "phase_deg": ph, "rocof_hz_s": rocof,
                "p_w": p, "q_var": q, "i_max_a": i,
                "e_import_wh": self.e_import_wh, "e_export_wh": self.e_export_wh}

    def meter_frequency(self):
        """meter_values()["frequency_hz"] alone (cheaper: the plots sample it every few ms)."""
        live = self._live
        nf = self._nf
        if live <= nf:
            return 0.0
        if _sqrt(self._mean(self._b_v2, self._nc)) <= V_PRESENT_PU:
            return 0.0
        j = self._k - 1
        if j < 0:
            j += self._L
        return self._freq_at(j)

    def inverter_values(self):
        """INV_Status / INV_AcMeasure / INV_DcMeasure contents."""
        v_ac = _sqrt(self._mean(self._b_bv2, self._nc)) * self.v_n
        vb = self.v_batt
        return {"mode": self.mode, "state": self.state,
                "fault_overcurrent": self.f_oc, "fault_overtemp": self.f_ot, "fault_dc": False,
                "fault_ac_grid": self.f_acgrid, "fault_cmd_timeout": self.f_timeout,
                "p_w": self.p_batt, "q_var": self.q_inv,
                "v_ac": v_ac, "f_ac": self.f_n + self.pll_dw / _TWO_PI if self.bv > V_PRESENT_PU else 0.0,
                "i_ac": self.i_ac, "v_dc": vb, "i_dc": self.p_batt / vb, "temp_c": self.temp}

    def take_ac_loss(self):
        """The pending AC-loss event (dict(reason, voltage_v)) once, else None."""
        e = self._loss_pending
        self._loss_pending = None
        return e

    def relay_state(self):
        """RLY_Feedback.ContactState alone (cheap): 0 open, 1 closed, 2 moving."""
        return RELAY_MOVING if self.rl_moving else (RELAY_CLOSED if self.rl_conn else RELAY_OPEN)

    def relay_values(self):
        """RLY_Feedback contents: contact state, utility-side voltage, synchro-check angle."""
        us_rms = _sqrt(self._mean(self._b_v2, self._nc))
        if self.rl_conn or self.usv <= V_PRESENT_PU or self.bv <= V_PRESENT_PU:
            dphi = 0.0
        else:
            dphi = ((self.usth - self.bth + _PI) % _TWO_PI - _PI) * _DEG
            if dphi >= 180.0:
                dphi -= 360.0
        return {"state": RELAY_MOVING if self.rl_moving else (RELAY_CLOSED if self.rl_conn else RELAY_OPEN),
                "utility_present": us_rms > RELAY_PRESENT_PU, "utility_v": us_rms * self.v_n,
                "phase_diff_deg": dphi}

    def ev_values(self):
        """EVCC_Limits / EVCC_Status contents (soc and min_soc as fractions 0..1)."""
        return {"soc": self.soc, "capacity_kwh": self.cap_j / 3.6e6, "v_batt": self.v_batt,
                "max_charge_w": self.max_charge_w, "max_discharge_w": self.max_discharge_w,
                "min_soc": self.min_soc, "session_active": self.session_active}
