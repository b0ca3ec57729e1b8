"""Physical bounds every protocol field is checked against when it is read, before any instrument is
involved. They are generous for lithium-metal / solid-electrolyte cells and exist to catch typos and
unit slips (``9 A/cm^2`` for ``9 mA/cm^2``, ``5 V`` for ``5 mV``), not to second-guess an experiment;
the instrument's own ranges are checked afterwards against the cell (protocols.binding).
"""

from __future__ import annotations

DAY = 86400.0

# Current densities (A/m^2). 1 A/cm^2 is ~100x the highest critical current densities reported for
# sulfide and garnet electrolytes.
MAX_CURRENT_DENSITY = 1e4
# EIS excitation: impedance is only linear for small signals (typically 5-10 mV); 100 mV is the largest
# sensible potential amplitude, 100 mA/cm^2 the largest current amplitude.
MAX_EIS_POTENTIAL_AMPLITUDE = 0.1  # V
MAX_EIS_CURRENT_AMPLITUDE = 1e3  # A/m^2
# Potentials vs the reference (V): no lithium cell chemistry spans more than ~6 V; 10 V is the bound.
MAX_POTENTIAL = 10.0
# Frequencies (Hz) any impedance analyser could reach.
MIN_FREQUENCY, MAX_FREQUENCY = 1e-6, 1e8
MAX_POINTS_PER_DECADE = 1000
MAX_SWEEP_POINTS = 10_000
# Areal capacity (C/m^2): 1000 mAh/cm^2 is ~5 mm of lithium.
MAX_AREAL_CAPACITY = 1000 * 3.6e4  # 1 mAh/cm^2 = 3.6e4 C/m^2
# Times (s).
MAX_DURATION = 365 * DAY
MIN_SAMPLE_PERIOD, MAX_SAMPLE_PERIOD = 1e-6, DAY
MAX_SAMPLES_PER_STEP = 100_000_000
MAX_CYCLES = 100_000
MAX_CLEAR_WAIT, MAX_INTERLOCK_TIMEOUT = DAY, 7 * DAY
# Interlock windows: pressures a press can apply (Pa), temperatures a glovebox cell can see (K).
MAX_PRESSURE = 1e9
MIN_TEMPERATURE, MAX_TEMPERATURE = 173.15, 573.15  # -100 degC .. 300 degC
