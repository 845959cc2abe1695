"""Energy services (CPython, the gateway's Linux side or a platform): prices and tariffs,
the least-cost charge/discharge planner, backup autonomy, metering settlement and the year
simulation. The firmware never imports this package; plans reach it as CAN setpoints.
"""
