"""Grid support: the power responses grid codes require of an exporting unit, one function a
module (docs/grid-support.md). Active-power support: p_of_f (P(f), LFSM-O/LFSM-U,
frequency droop); freq_service (a frequency-response product's curve supplied at run time:
FCR-N, FCR-D, FFR).

Inside this package powers follow the generator convention of the standards: + = the unit
delivers active power to the grid (the EV discharges), - = it absorbs (the EV charges).
"""
