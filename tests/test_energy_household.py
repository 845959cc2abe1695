"""The household load and the EV's use: annual energy, shape in Danish local time, seeds."""

import calendar

from energy import ev_use, household

T2024 = calendar.timegm((2024, 1, 1, 0, 0, 0))
N2024 = 366 * 96


def test_annual_energy_is_the_setting_and_winter_uses_more():
    e = household.expected_load_kw(T2024, 900, N2024)
    assert abs(sum(e) / 4 - 4000 * 366 / 365.25) < 40
    jan = sum(e[:31 * 96])
    jul = sum(e[182 * 96:213 * 96])
    assert jan > 1.15 * jul


def test_heat_pump_adds_its_energy_in_the_cold_months():
    base = household.expected_load_kw(T2024, 900, N2024)
    hp = household.expected_load_kw(T2024, 900, N2024, heat_pump=True, heat_pump_kwh=5000)
    extra = [(h - b) / 4 for h, b in zip(hp, base)]
    assert abs(sum(extra) - 5000) < 60
    jan = sum(extra[:31 * 96])
    jul = sum(extra[182 * 96:213 * 96])
    assert jan > 8 * jul > 0  # only hot water in July


def test_evening_peak_is_in_danish_local_time():
    # 2024-01-10 is a Wednesday; local = UTC+1. 18:00 local (17Z) beats 03:00 local (02Z) 3x
    t0 = calendar.timegm((2024, 1, 10, 0, 0, 0))
    e = household.expected_load_kw(t0, 900, 96)
    assert e[17 * 4] > 3 * e[2 * 4]
    # in summer time the same local hour is one UTC hour earlier
    t1 = calendar.timegm((2024, 7, 10, 0, 0, 0))
    s = household.expected_load_kw(t1, 900, 96)
    assert s[16 * 4] > 3 * s[1 * 4]  # 18:00 CEST = 16Z against 03:00 CEST = 01Z


def test_noise_is_seeded_mean_one_and_window_independent():
    a = household.load_kw(T2024, 900, 30 * 96, seed=3)
    b = household.load_kw(T2024, 900, 30 * 96, seed=3)
    c = household.load_kw(T2024, 900, 30 * 96, seed=4)
    assert a == b and a != c
    part = household.load_kw(T2024 + 5 * 86400, 900, 96, seed=3)
    assert part == a[5 * 96:6 * 96]
    e = household.expected_load_kw(T2024, 900, 30 * 96)
    assert abs(sum(a) / sum(e) - 1) < 0.03
    assert min(a) > 0


def test_ev_use_commute_and_saturday_trip():
    t0 = calendar.timegm((2024, 1, 8, 0, 0, 0))  # a Monday, local 01:00
    plugged, drive, deps = ev_use.schedule(t0, 900, 7 * 96)
    # Monday 07:30 local = 06:30Z = slot 26; back at 16:30 local = slot 62
    assert plugged[25] and not plugged[26] and not plugged[61] and plugged[62]
    assert (26, 0.80) in deps
    assert len(deps) == 6  # five commutes and the Saturday trip, none on Sunday
    week_kwh = sum(drive)
    assert abs(week_kwh - (5 * 44 + 150) * 0.18) < 1e-6


def test_ev_use_refuses_bad_keys():
    use = dict(ev_use.DEFAULT_USE, trips=[{"days": ["funday"], "depart": "7:30", "return": "06:00", "km": -1}])
    keys = [k for k, _ in ev_use.check_use(use, "use")]
    assert "use.trips[0].days" in keys and "use.trips[0].depart" in keys and "use.trips[0].km" in keys
