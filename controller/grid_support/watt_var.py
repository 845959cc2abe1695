"""Q(P): reactive power against active power.

Two characteristics of the same shape (a piecewise-linear curve over P):
- WattVar: IEEE 1547-2018 5.3.4 (active power-reactive power mode), Table 10 Category B
  defaults: P1, P2, P3 = 0.2, 0.5, 1.0 of P_rated with Q1, Q2, Q3 = 0, 0, -0.44 of the
  nameplate apparent power (absorbing at full export). For a unit that can absorb active
  power, the P' curve: P'1, P'2, P'3 = -0.2, -0.5, -1.0 of P'rated (the charging rating)
  with Q'1, Q'2, Q'3 = 0, 0, +0.44 (injecting at full charging), as OpenDER ships them.
  Between P'1 and P1 the curve is the straight line from Q'1 to Q1.
- CosPhiP: EN 50549-1:2019 4.7.2.3 cos phi(P) (power related control mode): the power
  factor against P/P_n. The standard leaves the points to the DSO; the defaults here (cos
  phi 1 up to 0.5 P_n, then falling linearly to 0.9 under-excited at P_n) are the example
  characteristic as recalled, labelled as such. Points are signed cos phi: + over-excited
  (injecting), - under-excited (absorbing); 1.0 is unity. Between two points cos phi is
  linear in P, passing through unity where the excitation changes.

Both follow P at once (a static function of the P passed in): Q's response time is P's.
Powers in W and var, generator convention.
"""

from math import sqrt

from controller.grid_support.curve import bound, interpolate


def _circle_edge(xs, ys, s, upward):
    """The largest P (upward) or the most negative P (not upward) on the curve (xs, ys),
    flat beyond its ends, at which P^2 + Q(P)^2 = s^2: where the curve leaves the apparent
    power circle. None if no such point exists on that side."""
    n = len(xs)
    if upward:
        # beyond the last point Q is flat
        q = ys[n - 1]
        if s * s >= q * q:
            p = sqrt(s * s - q * q)
            if p >= xs[n - 1]:
                return p
        rng = range(n - 1, 0, -1)
    else:
        q = ys[0]
        if s * s >= q * q:
            p = -sqrt(s * s - q * q)
            if p <= xs[0]:
                return p
        rng = range(1, n)
    for i in rng:
        x0 = xs[i - 1]
        x1 = xs[i]
        m = (ys[i] - ys[i - 1]) / (x1 - x0)
        a = ys[i - 1] - m * x0  # Q = a + m P on this segment
        c2 = 1.0 + m * m
        disc = a * a * m * m - c2 * (a * a - s * s)
        if disc < 0.0:
            continue
        r = sqrt(disc)
        p = (-a * m + r) / c2 if upward else (-a * m - r) / c2
        if x0 <= p <= x1:
            return p
    return None


class WattVar:
    """IEEE 1547-2018 watt-var: q(p_w) -> var.

    Guarantees: q is the curve through the P' points (if any) and the P points, flat beyond
    the ends, limited to [q_min_var, q_max_var] when they are given.
    """

    __slots__ = ("p_pts", "q_pts")

    def __init__(self, p_rated_w, s_rated_va, p_pu=(0.2, 0.5, 1.0), q_pu=(0.0, 0.0, -0.44),
                 p_load_pu=(-0.2, -0.5, -1.0), q_load_pu=(0.0, 0.0, 0.44), p_abs_rated_w=None):
        p_abs = p_rated_w if p_abs_rated_w is None else p_abs_rated_w
        ps = []
        qs = []
        if p_load_pu:
            # the P' points are given from P'1 (nearest zero) outwards: reverse them
            for i in range(len(p_load_pu) - 1, -1, -1):
                ps.append(p_load_pu[i] * p_abs)
                qs.append(q_load_pu[i] * s_rated_va)
        for i in range(len(p_pu)):
            ps.append(p_pu[i] * p_rated_w)
            qs.append(q_pu[i] * s_rated_va)
        self.p_pts = tuple(ps)
        self.q_pts = tuple(qs)

    def q(self, p_w, q_min_var=None, q_max_var=None):
        return bound(interpolate(p_w, self.p_pts, self.q_pts), q_min_var, q_max_var)

    def p_max(self, s_va):
        """The largest export (W) at which the curve's Q still fits in s_va: limiting P to
        it first holds the curve at the rating (what OpenDER does); None if it always fits."""
        return _circle_edge(self.p_pts, self.q_pts, s_va, True)

    def p_min(self, s_va):
        """The largest charging (most negative W) at which the curve's Q fits in s_va."""
        return _circle_edge(self.p_pts, self.q_pts, s_va, False)


class CosPhiP:
    """EN 50549-1 cos phi(P): q(p_w) -> var.

    Guarantees: at P/p_rated between two points, cos phi is interpolated linearly (through
    unity if the excitation changes); beyond the ends it is that of the end point; q has
    the sign of the excitation for either sign of P and |q| = |P| tan(phi); limited to
    [q_min_var, q_max_var] when they are given.
    """

    __slots__ = ("p_rated", "p_pts", "u_pts")

    def __init__(self, p_rated_w, p_pu=(0.5, 1.0), cos_phi=(1.0, -0.9)):
        for c in cos_phi:
            if not 0.0 < abs(c) <= 1.0:
                raise ValueError("cos phi must be in (0, 1] either sign")
        self.p_rated = p_rated_w
        self.p_pts = tuple(p_pu)
        # u = (1 - |cos phi|) with the excitation's sign: 0 at unity from either side, so
        # one straight line per segment is linear in cos phi on each side of unity
        self.u_pts = tuple((1.0 - abs(c)) * (1.0 if c > 0 else -1.0) for c in cos_phi)

    def cos_phi(self, p_w):
        """The signed cos phi at p_w (+ over-excited, - under-excited)."""
        u = interpolate(p_w / self.p_rated, self.p_pts, self.u_pts)
        return 1.0 - u if u >= 0 else -1.0 - u

    def q(self, p_w, q_min_var=None, q_max_var=None):
        u = interpolate(p_w / self.p_rated, self.p_pts, self.u_pts)
        if u == 0:
            return bound(0.0, q_min_var, q_max_var)
        c = 1.0 - abs(u)
        t = sqrt(1.0 - c * c) / c
        return bound(abs(p_w) * t if u > 0 else -abs(p_w) * t, q_min_var, q_max_var)
