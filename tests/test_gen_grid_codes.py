"""The generated grid-code modules (controller/protection/profiles/) against their source
of truth (controller/protection/grid_code_sources.py) and the generator's refusals."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from controller.protection import grid_code_sources, grid_codes  # noqa: E402
from tools import gen_grid_codes  # noqa: E402


def test_committed_profiles_are_current():
    ok, msg = gen_grid_codes.check()
    assert ok, msg
    assert gen_grid_codes.main(["--check"]) == 0


def test_one_module_per_profile_and_nothing_else():
    have = sorted(n for n in os.listdir(gen_grid_codes.DEFAULT_OUT_DIR) if n.endswith(".py") and n != "__init__.py")
    assert have == sorted(grid_codes.module_name(n) + ".py" for n in grid_codes.NAMES)


def test_generated_modules_hold_no_source_text():
    for path, text in gen_grid_codes.outputs():
        body = text.split("def build():", 1)[1]
        for _, _, src in grid_codes.numbers(grid_code_sources.build(_name_of(path))):
            if src:
                assert src not in body, (path, src)
        assert "IEEE 1547" not in body and "EN 50549" not in body and "Energinet" not in body


def _name_of(path):
    base = os.path.basename(path)[:-3]
    return next(n for n in grid_codes.NAMES if grid_codes.module_name(n) == base)


def test_stale_and_missing_modules_are_reported(tmp_path, capsys):
    out = str(tmp_path)
    assert gen_grid_codes.main(["--out-dir", out, "--check"]) == 1  # missing
    assert gen_grid_codes.main(["--out-dir", out]) == 0
    assert gen_grid_codes.main(["--out-dir", out, "--check"]) == 0
    path = os.path.join(out, "en50549_1.py")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("(0.85, None)", "(0.86, None)", 1))
    capsys.readouterr()
    assert gen_grid_codes.main(["--out-dir", out, "--check"]) == 1
    assert "en50549_1.py is stale" in capsys.readouterr().err


def test_a_number_without_a_source_is_refused(monkeypatch):
    real = grid_code_sources.build

    def bad(name):
        p = real(name)
        p["island_clearing_s"] = 2.0  # a bare number: no source
        return p

    monkeypatch.setattr(grid_code_sources, "build", bad)
    with pytest.raises(gen_grid_codes.GeneratorError) as e:
        gen_grid_codes.generate_profile("EN50549-1")
    assert "island_clearing_s" in str(e.value)
