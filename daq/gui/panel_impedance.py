"""The impedance plots of a channel panel (daq.gui.panel): the last few spectra on Nyquist and Bode
plots, older ones paler, each with its fitted circuit where one was fitted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from daq.gui.panel_status import PER_HOUR

SPECTRUM_COLOURS = ("#b8c4d6", "#7890b8", "#1f4e9c")  # older -> newest


def show_impedance_axes(nyquist: pg.PlotItem, bode_mag: pg.PlotItem, bode_phase: pg.PlotItem, shown: bool) -> None:
    """Impedance plots without spectra show no axes (no made-up ohm ranges), only their title."""
    for item in (nyquist, bode_mag, bode_phase):
        for side in ("left", "bottom"):
            item.showAxis(side, shown)
    if not shown:
        nyquist.setTitle("Impedance (Nyquist): no spectra", size="9pt")


def draw_spectra(
    nyquist: pg.PlotItem, bode_mag: pg.PlotItem, bode_phase: pg.PlotItem, spectra: Sequence[Mapping[str, Any]]
) -> None:
    """Redraw the plots with ``spectra`` (oldest first, at most len(SPECTRUM_COLOURS)) and title the
    Nyquist plot with the newest one: its index, start time and fitted resistances, or "(raw)"."""
    show_impedance_axes(nyquist, bode_mag, bode_phase, bool(spectra))
    if not spectra:
        return
    for item in (nyquist, bode_mag, bode_phase):
        item.clear()
    colours = SPECTRUM_COLOURS[-len(spectra) :]
    newest_fit = None
    for sp, colour in zip(spectra, colours):
        pts = sp["points"]
        f, zr, zi = pts["frequency"], pts["z_real"], pts["z_imag"]
        z = zr + 1j * zi
        pen, brush = pg.mkPen(colour, width=1), pg.mkBrush(colour)
        nyquist.plot(zr, -zi, pen=pen, symbol="o", symbolSize=4, symbolBrush=brush, symbolPen=None)
        bode_mag.plot(f, np.abs(z), pen=pen, symbol="o", symbolSize=3, symbolBrush=brush, symbolPen=None)
        bode_phase.plot(
            f, -np.degrees(np.angle(z)), pen=pen, symbol="o", symbolSize=3, symbolBrush=brush, symbolPen=None
        )
        fit = sp.get("fit")
        if fit is not None:
            fpen = pg.mkPen("#c03030", width=1.5, style=Qt.PenStyle.DashLine)
            zf = fit["z"]
            nyquist.plot(zf.real, -zf.imag, pen=fpen)
            bode_mag.plot(fit["frequency"], np.abs(zf), pen=fpen)
            bode_phase.plot(fit["frequency"], -np.degrees(np.angle(zf)), pen=fpen)
            newest_fit = fit
    nyquist.setTitle(spectrum_title(spectra[-1], newest_fit), size="9pt")


def spectrum_title(sp: Mapping[str, Any], newest_fit: Mapping[str, Any] | None) -> str:
    """ "Impedance #4 at 12.50 h · fit R-RC: R0 = 12.3 ohm, ..." for the newest spectrum ``sp``."""
    meta = sp.get("meta", {})
    title = f"Impedance #{sp['index']} at {float(meta.get('t_start', 0.0)) * PER_HOUR:.2f} h"
    if newest_fit is not None and newest_fit is sp.get("fit"):
        rs = [f"{name} = {value[0]:.3g} ohm" for name, value in newest_fit["parameters"].items() if value[2] == "ohm"]
        title += f" \u00b7 fit {newest_fit['circuit']}: " + ", ".join(rs)
    elif sp.get("fit") is None:
        title += " (raw)"
    return title
