"""ISO 15118 support: EXI codec (exi.py) driven by generated grammar tables (grammar_*.py)."""
