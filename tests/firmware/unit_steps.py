"""Helpers for the grid-support unit tests (not a test module; runs under MicroPython).

near(): a comparison with an absolute tolerance (W or var); steps(): drive a unit's
update for a span of plant time at the control period, as the gateway does."""

PERIOD = 10000  # us: one control period


def near(a, b, tol=0.5):
    return abs(a - b) <= tol


def steps(update, seconds, t0=0):
    """update(t) once per PERIOD for `seconds` after t0; (its last result, the last t)."""
    t = t0
    out = None
    for _ in range(int(seconds * 1000000 // PERIOD)):
        t += PERIOD
        out = update(t)
    return out, t
