"""The V2X gateway firmware (MicroPython-clean; README.md, docs/)."""


def forget(name):
    """Drop module `name` (a dotted path) from sys.modules and from its package, so that the
    RAM it holds can be collected: for modules a board needs only for a moment (a grid-code
    profile, the configuration's checks). The next import loads it again."""
    import sys

    sys.modules.pop(name, None)
    i = name.rfind(".")
    pkg = sys.modules.get(name[:i]) if i > 0 else None
    if pkg is not None and hasattr(pkg, name[i + 1:]):
        delattr(pkg, name[i + 1:])
