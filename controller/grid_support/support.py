"""Grid support as the gateway runs it: the functions in force, their order and priority.

Built from settings.resolve() (plain data) for one site; the gateway calls it every
control period while the unit feeds the grid (grid-following, relay closed, not in the
safe state) and reset() otherwise. Powers are AC powers in the generator convention of
this package (+ = the EV delivers to the grid).

Order and priority (docs/grid-support.md "Priority"):
1. reactive power: the Q mode in force (unity/fixed power factor, constant Q, Q(U),
   cos phi(P)) from the voltage and the last active power, bounded by the profile's
   reactive capability; the caller adds the active anti-islanding term and bounds the
   sum by the apparent-power (current) limit, which then leaves P the rest
   (controller/control/limits.py: reactive power has priority within the rating);
2. active power: a frequency-response service in force replaces the schedule
   (controller/grid_support/freq_service.py); where its curve is not acting, P(f)
   (LFSM-O/LFSM-U, frequency droop) responds from that schedule; volt-watt caps the
   result; everything within the bounds the caller passes (EV, inverter, point of
   connection, the mode's direction), which the caller applies again last: the current
   limit always wins.
Guarantee: p() returns a value within [p_min, p_max]; q() within +-q_cap and the profile's
capability.
"""

from controller.grid_support.p_of_f import REF_MOMENTARY, REF_RATED, FrequencyWatt

P_OF_F, VOLT_WATT = 1, 2  # bits of `acting`: which function moved P this period


def make_q(s, s_rated_va):
    """The reactive_power.ReactivePower of the settings' Q mode, with only its own unit
    imported (a board keeps the others out of RAM)."""
    from controller.grid_support.reactive_power import ReactivePower

    mode = s["q_mode"]
    if mode == "fixed_pf":
        from controller.grid_support.power_factor import PowerFactor

        return ReactivePower(mode, PowerFactor(s["pf"], s["pf_excitation"] > 0))
    if mode == "constant_q":
        from controller.grid_support.constant_q import ConstantQ

        return ReactivePower(mode, ConstantQ(s["q_pu"] * s_rated_va))
    if mode == "volt_var":
        from controller.grid_support.volt_var import VoltVar

        return ReactivePower(mode, VoltVar(s_rated_va, s["volt_var_v_pu"], s["volt_var_q_pu"], s["volt_var_olrt_s"]))
    from controller.grid_support import watt_var

    if s["cos_phi_p_kind"] == "pf":  # EN 50549-1 cos phi(P): the curve's values are power factors
        return ReactivePower(mode, watt_var.CosPhiP(s_rated_va, s["cos_phi_p_p_pu"], s["cos_phi_p_y"]))
    # IEEE 1547 watt-var: the values are reactive powers (its P' curve mirrors them for charging)
    p = s["cos_phi_p_p_pu"]
    q = s["cos_phi_p_y"]
    return ReactivePower("watt_var", watt_var.WattVar(s_rated_va, s_rated_va, p, q, tuple(-x for x in p),
                                                       tuple(-x for x in q)))


class GridSupport:
    __slots__ = ("pf", "vw", "q_unit", "q_mode", "q_cap", "acting", "q",
                 # the gateway's grid-support state, kept here (one object on the gateway)
                 "on", "reported", "fsvc", "fsa", "reserve_soc_pct", "service", "hdr_in", "pt_in", "p_gen_ac")

    def __init__(self, s, s_rated_va):
        """s: settings.resolve(cfg); s_rated_va: the inverter's rating (also its rated P)."""
        f_nom = s["f_nom_hz"]
        self.pf = None
        if s["p_of_f"]:
            self.pf = FrequencyWatt(f_nom, s_rated_va, db_of_hz=s["f_of_hz"] - f_nom, db_uf_hz=f_nom - s["f_uf_hz"],
                                    k_of=s["droop_of"], k_uf=s["droop_uf"], olrt_s=s["p_of_f_olrt_s"],
                                    delay_s=s["p_of_f_delay_s"],
                                    reference=REF_MOMENTARY if s["reference"] == "momentary" else REF_RATED)
        self.vw = None
        if s["volt_watt"]:
            from controller.grid_support.volt_watt import VoltWatt

            self.vw = VoltWatt(s_rated_va, s["volt_watt_v_pu"], s["volt_watt_p_pu"], s["volt_watt_olrt_s"])
            self.vw.reset(s_rated_va * s["volt_watt_p_pu"][0])
        self.q_mode = s["q_mode"]
        self.q_cap = s["q_max_pu"] * s_rated_va
        self.q_unit = None  # unity power factor: Q = 0, no unit needed (nor its RAM)
        if self.q_mode != "unity_pf":
            self.q_unit = make_q(s, s_rated_va)
        self.acting = 0
        self.q = 0.0
        self.on = False  # ran last period (reset once when it stops)
        self.reported = 0  # the functions last reported acting (bits: 1 P(f), 2 volt-watt, 4 service)
        # a frequency-response service (freq_service.py), made with the first header frame:
        # a site that never sells one keeps the module and its arrays out of RAM
        self.fsvc = None
        self.fsa = None
        self.reserve_soc_pct = 100.0  # the backup reserve: no discharge for a service at or below it
        self.service = False  # a service sets the power now (reported mode FREQ_SERVICE)
        self.hdr_in = self.pt_in = None  # the service's input frames (controller/bus/inputs.py)
        self.p_gen_ac = 0.0  # the last command as AC power, generator convention (the Q modes' P)

    def q_var(self, v_pu, p_w, now):
        """The reactive power of the Q mode (var, + = injecting) for the voltage v_pu and
        the active power p_w the unit delivers now."""
        if self.q_unit is None:
            return 0.0
        q = self.q_unit.update(v_pu, p_w, -self.q_cap, self.q_cap, now)
        self.q = q
        return q

    def quiet(self, f_hz, now):
        """Nothing in active power can act for this frequency: no volt-watt, and P(f) off or
        idle (p_of_f.FrequencyWatt.idle); the caller may then skip p_w()."""
        return self.vw is None and (self.pf is None or self.pf.idle(f_hz, now))

    def p_w(self, f_hz, v_pu, p_sched_w, p_min_w, p_max_w, now, p_of_f=True):
        """The active power to deliver (W) for schedule p_sched_w within [p_min_w, p_max_w];
        p_of_f False: P(f) stands aside (a frequency service's curve is acting) and starts
        afresh, latching anew, when it is called with True again."""
        acting = 0
        p = p_sched_w
        if self.pf is not None and not p_of_f:
            self.pf.reset(now)
        elif self.pf is not None:
            p = self.pf.update(f_hz, p_sched_w, p_min_w, p_max_w, now)
            if self.pf.active:
                acting = P_OF_F
        if self.vw is not None:
            cap = self.vw.update(v_pu, now)
            if p > cap:
                p = cap if cap >= p_min_w else p_min_w
                acting |= VOLT_WATT
        if p < p_min_w:
            p = p_min_w
        elif p > p_max_w:
            p = p_max_w
        self.acting = acting
        return p

    def reset(self, now):
        """Not feeding the grid: nothing in force, nothing latched; the Q mode restarts from 0."""
        if self.pf is not None:
            self.pf.reset(now)
        if self.vw is not None:
            self.vw.reset(self.vw.target(1.0), now)
        if self.q_unit is not None and self.q_unit.mode == "volt_var":
            self.q_unit.unit.reset(0.0, now)
        self.acting = 0
        self.q = 0.0
