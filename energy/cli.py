"""`v2xgw energy ...`: one subcommand per module of this package.

Each module in COMMANDS defines add_parser(esub) and registers its own subcommand, so the
commands stay beside the code they run. Exit codes: 0 done, 2 bad input (the message
names the file and key), 1 anything the user cannot fix by editing an input.
"""

import argparse
import importlib
import json

COMMANDS = ("energy.prices_cmd", "energy.plan_cmd", "energy.autonomy_cmd", "energy.simulate_cmd",
            "energy.settle_cmd", "energy.manager_cmd", "energy.fleet_cmd")


def add_parser(sub):
    e = sub.add_parser("energy", help="prices, tariffs, plans, the live energy manager, autonomy, metering settlement, year simulation")
    esub = e.add_subparsers(dest="energycmd", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(esub)


def number(what, lo=None, hi=None, above=None, below=None):
    """An argparse type: a float within [lo, hi] and (above, below) (None: open); anything
    else, NaN included, is refused with "must be <what>"."""

    def parse(text):
        try:
            v = float(text)
        except ValueError:
            v = float("nan")
        if not (v == v and (lo is None or v >= lo) and (hi is None or v <= hi) and (above is None or v > above)
                and (below is None or v < below)):
            raise argparse.ArgumentTypeError("must be %s, not %s" % (what, text))
        return v

    return parse


def write_json(path, doc):
    """`doc` as indented JSON with a final newline (OSError to the caller: exit 1 there)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
