"""Piecewise-linear curves: the shape of every characteristic the grid codes give as points
(IEEE 1547-2018 volt-var Table 8, watt-var Table 10, volt-watt Table 11; EN 50549-1:2019
Q(U), cos phi(P), P(U)).

A curve is two sequences of the same length, xs strictly increasing. interpolate() is flat
beyond the end points, as the standards' curves are (the value at the first point below it,
at the last above it). check() is for configuration validation: it returns None for a good
curve, else a short sentence saying what is wrong.
"""


def interpolate(x, xs, ys):
    """y at x on the curve through (xs[i], ys[i]): linear between points, ys[0] at and
    below xs[0], ys[-1] at and above xs[-1]. xs must be strictly increasing (check()).
    No allocation beyond the float result."""
    n = len(xs)
    if x <= xs[0]:
        return ys[0]
    if x >= xs[n - 1]:
        return ys[n - 1]
    i = 1
    while xs[i] < x:
        i += 1
    x0 = xs[i - 1]
    y0 = ys[i - 1]
    return y0 + (ys[i] - y0) * (x - x0) / (xs[i] - x0)


def check(xs, ys):
    """None if (xs, ys) is a usable curve, else what is wrong: fewer than two points,
    lengths that differ, or x not strictly increasing (naming the first offending point,
    counted from 1 as the standards number them)."""
    if len(xs) != len(ys):
        return "x and y lengths differ (%d x, %d y)" % (len(xs), len(ys))
    if len(xs) < 2:
        return "too few points (%d, need 2)" % len(xs)
    for i in range(1, len(xs)):
        if not xs[i] > xs[i - 1]:
            return "x not strictly increasing at point %d" % (i + 1)
    return None


def bound(x, lo, hi):
    """x limited to [lo, hi]; None leaves that side open. hi is applied last, so with
    lo > hi (a caller's mistake) the result is hi."""
    if lo is not None and x < lo:
        x = lo
    if hi is not None and x > hi:
        x = hi
    return x
