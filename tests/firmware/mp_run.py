"""Run the firmware tests under MicroPython (and CPython): `micropython tests/firmware/mp_run.py`.

Every module tests/firmware/test_*.py holds plain `test_*` functions that use only
`assert` and the firmware itself, so pytest collects them under CPython and this
runner executes the very same functions under the `micropython` interpreter.
Prints one line per failure and a closing 'N passed, N failed' line; exit 1 on failure.
"""
import gc
import os
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
ROOT = HERE + "/../.."
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)


def main(argv):
    names = sorted(n[:-3] for n in os.listdir(HERE) if n.startswith("test_") and n.endswith(".py"))
    if len(argv) > 1:
        names = [n for n in names if n in argv[1:]]
    passed = failed = 0
    for name in names:
        mod = __import__(name)
        for attr in sorted(dir(mod)):
            if not attr.startswith("test_"):
                continue
            fn = getattr(mod, attr)
            if not callable(fn):
                continue
            gc.collect()  # each test starts on a collected heap: one test's garbage is not another's MemoryError
            try:
                fn()
                passed += 1
            except Exception as e:  # report and go on: one failure must not hide others
                failed += 1
                print("FAIL %s.%s: %s %s" % (name, attr, type(e).__name__, e))
                if hasattr(sys, "print_exception"):
                    sys.print_exception(e)
    print("micropython-firmware: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


sys.exit(main(sys.argv))
