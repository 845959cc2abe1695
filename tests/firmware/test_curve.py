"""controller/grid_support/curve.py: piecewise-linear curves and their validation.
Runs under MicroPython (mp_run.py) and CPython (pytest)."""

from controller.grid_support.curve import bound, check, interpolate

XS = (0.92, 0.98, 1.02, 1.08)
YS = (0.44, 0.0, 0.0, -0.44)


def _near(a, b, tol=1e-9):
    return abs(a - b) <= tol


def test_points_are_hit_exactly():
    for x, y in zip(XS, YS):
        assert _near(interpolate(x, XS, YS), y)


def test_linear_between_points():
    assert _near(interpolate(0.95, XS, YS), 0.22)
    assert _near(interpolate(1.05, XS, YS), -0.22)
    assert _near(interpolate(1.0, XS, YS), 0.0)
    assert _near(interpolate(0.935, XS, YS), 0.44 * 0.75)


def test_flat_beyond_the_ends():
    assert interpolate(0.5, XS, YS) == 0.44
    assert interpolate(1.5, XS, YS) == -0.44
    assert interpolate(-1e9, XS, YS) == 0.44


def test_two_point_curve_and_decreasing_y():
    assert _near(interpolate(1.08, (1.06, 1.10), (1.0, 0.2)), 0.6)


def test_check_accepts_a_good_curve():
    assert check(XS, YS) is None
    assert check((0.0, 1.0), (5, 5)) is None


def test_check_names_each_problem():
    assert "too few" in check((1.0,), (1.0,))
    assert "too few" in check((), ())
    assert "differ" in check((1.0, 2.0, 3.0), (1.0, 2.0))
    msg = check((0.92, 0.98, 0.98, 1.08), YS)
    assert "strictly increasing" in msg and "point 3" in msg
    assert "point 2" in check((1.0, 0.5), (0.0, 0.0))


def test_bound():
    assert bound(5.0, -1.0, 2.0) == 2.0
    assert bound(-5.0, -1.0, 2.0) == -1.0
    assert bound(0.5, -1.0, 2.0) == 0.5
    assert bound(5.0, None, None) == 5.0
    assert bound(1.0, 3.0, 2.0) == 2.0  # crossed bounds: the upper one wins
