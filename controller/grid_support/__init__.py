"""Grid support: the power responses grid codes require of an exporting unit, one function a
module (docs/grid-support.md). Active-power support: p_of_f (P(f), LFSM-O/LFSM-U,
frequency droop), volt_watt (P(U) cap), freq_service (a frequency-response product's curve
supplied at run time: FCR-N, FCR-D, FFR). Reactive-power support: volt_var (Q(U)),
watt_var (IEEE watt-var, EN cos phi(P)), power_factor (constant pf), constant_q;
reactive_power selects the one mode in force. curve: the piecewise-linear curves they are
drawn with. settings: the profile's values and the configuration's overrides in force;
support: the order and priority the gateway runs them in.

Inside this package powers follow the generator convention of the standards: + = the unit
delivers active power to the grid (the EV discharges), - = it absorbs (the EV charges).
"""
