"""One convention for impedance excitation amplitudes, so a protocol excites alike on every instrument.

A protocol's EIS ``amplitude`` (and ``EisRequest.amplitude``) is the PEAK value of the sine (zero to
peak): E(t) = E_dc + amplitude * sin(2 pi f t), or the same for the current. Each driver converts it to
what its vendor API takes, with the functions below:

- Gamry (GamryReadZ.Measure): RMS. The driver passes ``peak_to_rms(amplitude)``.
- BioLogic (``Amplitude_Voltage`` / ``Amplitude_Current`` of PEIS/GEIS): taken as peak (sources and the
  status of that reading in docs/drivers.md), so the value is passed unchanged.

For a sine, peak = sqrt(2) * RMS.
"""

from __future__ import annotations

import math

PROTOCOL_CONVENTION = "peak"
SQRT2 = math.sqrt(2.0)


def rms_to_peak(rms: float) -> float:
    """Peak (zero-to-peak) amplitude of a sine of the given RMS value."""
    return SQRT2 * rms


def peak_to_rms(peak: float) -> float:
    """RMS value of a sine of the given peak (zero-to-peak) amplitude."""
    return peak / SQRT2
