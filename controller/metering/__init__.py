"""Energy metering in the firmware: registers per direction and use, interval records.

`meter.py` integrates and keeps the wall time, `store.py` holds the on-media formats.
Loaded only when a unit meters (controller.main, the HIL): docs/metering.md.
"""
