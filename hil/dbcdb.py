"""The site bus database for CPython tools: every DBC file in dbc/, loaded with cantools."""

import functools
import pathlib

import cantools

DBC_DIR = pathlib.Path(__file__).resolve().parent.parent / "dbc"


@functools.lru_cache(maxsize=None)
def database():
    db = cantools.database.Database()
    for f in sorted(DBC_DIR.glob("*.dbc")):
        db.add_dbc_file(str(f))
    return db
