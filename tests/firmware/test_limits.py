"""Limit arbitration (run under MicroPython and CPython).

The randomized check here is the MicroPython-side twin of the hypothesis property
test in tests/test_limits_property.py: a fixed-seed generator, so it runs anywhere.
"""

from controller import config
from controller.control import limits


class Lcg:
    """Deterministic pseudo-random numbers without the random module."""

    def __init__(self, seed):
        self.s = seed

    def uniform(self, lo, hi):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return lo + (hi - lo) * self.s / 0x7FFFFFFF


def _narrower(bound, exact, upper):
    """An integer bound is never wider than the exact one, and at most 2 W narrower."""
    if upper:
        return exact - 2.0 <= bound <= exact + 1e-6
    return exact - 1e-6 <= bound <= exact + 2.0


def _arb(**site):
    cfg = config.validate({"site": site} if site else {})
    return limits.Arbiter(cfg)


def test_ev_limits_bind():
    a = _arb()
    a.update(True, 3000.0, 2000.0, 50.0, 20.0, 230.0, 0.0)
    assert a.clamp(5000.0) == (3000.0, limits.EV_CHARGE)
    assert a.clamp(-5000.0) == (-2000.0, limits.EV_DISCHARGE)
    assert a.clamp(100.0) == (100.0, limits.NONE)


def test_min_soc_blocks_discharge():
    a = _arb()
    a.update(True, 3000.0, 2000.0, 20.0, 20.0, 230.0, 0.0)
    assert a.clamp(-1000.0) == (0.0, limits.MIN_SOC)
    assert a.clamp(1000.0)[0] == 1000.0


def test_inverter_rating_in_sag():
    a = _arb()
    a.update(True, 50000.0, 50000.0, 50.0, 20.0, 230.0, 0.0)
    assert _narrower(a.hi_w, 11000.0 * 0.97, True)
    assert _narrower(a.lo_w, -11000.0 / 0.97, False)
    a.update(True, 50000.0, 50000.0, 50.0, 20.0, 161.0, 0.0)  # 0.7 pu
    assert _narrower(a.hi_w, 11000.0 * 0.7 * 0.97, True)
    assert a.hi_by == limits.INV_RATING


def test_main_fuse_bounds_charging():
    a = _arb(main_fuse_a=16.0)
    # 3 * 230 V * 16 A = 11040 W at the connection point, of which the load takes 5000
    a.update(True, 22000.0, 22000.0, 50.0, 20.0, 230.0, 5000.0)
    assert a.hi_by == limits.FUSE
    assert (11040.0 - 5000.0 - limits.RESOLUTION_W) * 0.97 - 2.0 <= a.hi_w <= (11040.0 - 5000.0) * 0.97


def test_export_limit():
    a = _arb(export_limit_kw=2.0)
    a.update(True, 11000.0, 11000.0, 50.0, 20.0, 230.0, 1000.0)
    # export <= 2 kW: inverter AC >= -(2000 + 1000) -> battery >= -3000 / 0.97
    assert a.lo_by == limits.EXPORT
    assert -3000.0 / 0.97 <= a.lo_w <= -(3000.0 - limits.RESOLUTION_W) / 0.97 + 2.0


def test_no_inputs_no_power():
    a = _arb()
    a.update(False, 11000.0, 11000.0, 50.0, 20.0, 230.0, 0.0)
    assert a.clamp(5000.0) == (0.0, limits.INPUT_TIMEOUT)
    assert a.clamp(-5000.0) == (0.0, limits.INPUT_TIMEOUT)


def test_randomized_never_above_any_limit():
    rng = Lcg(7)
    a = _arb(main_fuse_a=25.0, export_limit_kw=5.0)
    eff = a.eff
    for _ in range(2000):
        ch = rng.uniform(0.0, 30000.0)
        dis = rng.uniform(0.0, 30000.0)
        soc = rng.uniform(0.0, 100.0)
        min_soc = rng.uniform(0.0, 100.0)
        v = rng.uniform(0.0, 280.0)
        load = rng.uniform(-3000.0, 20000.0)
        a.update(True, ch, dis, soc, min_soc, v, load)
        p, _ = a.clamp(rng.uniform(-40000.0, 40000.0))
        assert a.lo_w <= p <= a.hi_w
        assert p <= ch + 1e-9 and -p <= dis + 1e-9
        if soc <= min_soc:
            assert p >= 0.0
        p_ac = limits.batt_to_ac(p, eff)
        s_max = 11000.0 * min(1.0, v / 230.0)
        assert abs(p_ac) <= s_max + 1e-6
        grid = load + p_ac
        # the bounds never push the point of connection past the fuse or export limit,
        # unless zero power already does (the load alone is over the limit)
        if p != 0.0:
            assert grid <= 3 * v * 25.0 + 1e-6 or p < 0
            assert grid >= -5000.0 - 1e-6 or p > 0


def test_reserve_blocks_discharge_with_hysteresis_while_grid_connected():
    a = _arb()
    a.update(True, 11000, 11000, 30.0, 10.0, 230.0, 0, reserve_pct=30.0)
    assert a.clamp(-5000) == (0, limits.RESERVE) and a.reserve_hold
    assert a.clamp(4000) == (4000, limits.NONE)  # charging is never held
    a.update(True, 11000, 11000, 30.9, 10.0, 230.0, 0, reserve_pct=30.0)
    assert a.clamp(-5000) == (0, limits.RESERVE)  # within the hysteresis
    a.update(True, 11000, 11000, 31.0, 10.0, 230.0, 0, reserve_pct=30.0)
    assert a.clamp(-5000) == (-5000, limits.NONE) and not a.reserve_hold
    a.update(True, 11000, 11000, 30.5, 10.0, 230.0, 0, reserve_pct=30.0)
    assert a.clamp(-5000) == (-5000, limits.NONE)  # coming down: held only at the reserve
    # backup operation (reserve None): the reserve is what the island runs on
    a.update(True, 11000, 11000, 25.0, 10.0, 230.0, 0, reserve_pct=None)
    assert a.clamp(-5000) == (-5000, limits.NONE)
    # the EV's own minimum is named first where both bind
    a.update(True, 11000, 11000, 9.0, 10.0, 230.0, 0, reserve_pct=30.0)
    assert a.clamp(-5000) == (0, limits.MIN_SOC)
