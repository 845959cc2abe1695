"""Generated grid-code profiles, numbers only, one module per profile
(tools/gen_grid_codes.py from controller/protection/grid_code_sources.py).
grid_codes.profile() imports the one it needs and drops it again."""
