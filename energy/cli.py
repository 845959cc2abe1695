"""`v2xgw energy ...`: one subcommand per module of this package.

Each module in COMMANDS defines add_parser(esub) and registers its own subcommand, so the
commands stay beside the code they run. Exit codes: 0 done, 2 bad input (the message
names the file and key), 1 anything the user cannot fix by editing an input.
"""

import importlib

COMMANDS = ("energy.prices_cmd", "energy.plan_cmd", "energy.autonomy_cmd", "energy.simulate_cmd",
            "energy.settle_cmd", "energy.manager_cmd")


def add_parser(sub):
    e = sub.add_parser("energy", help="prices, tariffs, plans, the live energy manager, autonomy, metering settlement, year simulation")
    esub = e.add_subparsers(dest="energycmd", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(esub)
