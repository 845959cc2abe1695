"""The docs describe the code: every configuration key is documented, and the README's
two commands are the ones CI runs."""

import pathlib
import re

from controller import config

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_config_key_documented_and_no_stale_ones():
    text = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \|", text, re.M))
    keys = {f"{sec}.{k}" for sec, leaves in config.schema().items() for k in leaves}
    assert keys - documented == set(), "undocumented keys"
    assert documented - keys == set(), "documented keys that do not exist"


def test_defaults_in_docs_match_schema():
    text = (ROOT / "docs" / "configuration.md").read_text()
    for sec, leaves in config.schema().items():
        for k, spec in leaves.items():
            m = re.search(rf"^\| `{sec}\.{k}` \| ([^|]+) \|", text, re.M)
            shown = m.group(1).strip().strip("`")
            default = spec[1]
            assert shown == ("null" if default is None else str(default)), (sec, k, shown, default)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", readme, re.S)
    commands = [b.strip() for b in blocks if b.strip()]
    assert len(commands) == 2, "the README holds exactly two commands (sh blocks)"
    assert "\n" not in commands[0] and "\n" not in commands[1]
    assert commands[1] in ci


def test_readme_module_table_names_existing_files():
    # the architecture table follows the layout: every path it names is in the tree
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| module | what it is |"):readme.index("## Budgets, measured")]
    for row in table.strip().splitlines()[2:]:
        cell = row.split("|")[1]
        first = None
        for name in re.findall(r"`([^`]+)`", cell):
            if name.split("/")[0] in ("controller", "hil", "tools", "energy", "ocpp_link", "board", "dbc", "docs", "tests"):
                first = name
                path = ROOT / name
            else:  # a sibling of the row's first path
                path = (ROOT / first).parent / name
            assert path.exists(), (name, row)
