"""pytest path setup for the firmware tests: make the repository root importable.

mp_run.py does the same for the MicroPython runner.
"""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
