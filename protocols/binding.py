"""Check a protocol against the cell and the instrument before any current flows."""

from __future__ import annotations

from collections.abc import Iterator

from daq.core import units as u
from daq.core.capabilities import Capabilities
from daq.core.errors import ConfigError
from daq.models.cell import Cell
from protocols.steps import Eis, EisSpec, Galvanostatic, Loop, Potentiostatic, Protocol, Rest, Step


def walk_paths(steps: tuple[Step, ...], prefix: str = "steps") -> Iterator[tuple[str, Step]]:
    """(path, step) for every step, with the same paths the loader uses in its messages."""
    for i, step in enumerate(steps, 1):
        path = f"{prefix}.{i}"
        yield path, step
        if isinstance(step, Loop):
            yield from walk_paths(step.steps, f"{path}.steps")


def _check_current(path: str, field: str, density: float, cell: Cell, caps: Capabilities) -> None:
    current = cell.current(density)
    shown = u.fmt(density, "mA/cm^2")
    if current > caps.max_current:
        raise ConfigError(
            f"{path}.{field}",
            shown,
            f"needs {u.fmt(current, 'mA')} on the {u.fmt(cell.electrodes.working_area, 'mm^2')} "
            f"working electrode, beyond the instrument's range of {u.fmt(caps.max_current, 'mA')}",
        )
    if current < 100 * caps.current_resolution:
        raise ConfigError(
            f"{path}.{field}",
            shown,
            f"only {u.fmt(current, 'nA')} on this electrode, below what the instrument can control "
            f"(resolution {u.fmt(caps.current_resolution, 'nA')})",
        )


def _check_eis(path: str, spec: EisSpec, cell: Cell, caps: Capabilities) -> None:
    supported = caps.eis_galvanostatic if spec.mode == "galvanostatic" else caps.eis_potentiostatic
    if not supported:
        raise ConfigError(f"{path}.mode", spec.mode, "the instrument cannot measure this kind of impedance")
    if spec.mode == "potentiostatic" and spec.dc is not None and not caps.potentiostatic:
        raise ConfigError(f"{path}.dc", u.fmt(spec.dc, "V"), 'the instrument cannot hold a potential; use dc = "ocv"')
    if spec.f_start > caps.eis_max_frequency or spec.f_end < caps.eis_min_frequency:
        raise ConfigError(
            f"{path}.f_start",
            u.fmt(spec.f_start, "Hz"),
            f"outside the instrument's {caps.eis_min_frequency:g}-{caps.eis_max_frequency:g} Hz",
        )
    if spec.mode == "galvanostatic":
        _check_current(path, "amplitude", spec.amplitude, cell, caps)


def check(protocol: Protocol, cell: Cell, caps: Capabilities) -> None:
    """Raise ConfigError for anything the cell or instrument cannot do."""
    for path, step in walk_paths(protocol.steps):
        period = getattr(step, "sample_period", None)
        if period is not None and period < caps.min_sample_period:
            raise ConfigError(
                f"{path}.sample_period",
                u.fmt(period, "s"),
                f"faster than the instrument's {caps.min_sample_period:g} s",
            )
        if isinstance(step, Galvanostatic):
            if not caps.galvanostatic:
                raise ConfigError(f"{path}.kind", step.kind, "the instrument cannot run galvanostatic steps")
            _check_current(path, "current_density", step.current_density, cell, caps)
            if step.operando_eis is not None:
                _check_eis(f"{path}.operando_eis", step.operando_eis, cell, caps)
        elif isinstance(step, Potentiostatic) and not caps.potentiostatic:
            raise ConfigError(f"{path}.kind", step.kind, "the instrument cannot run potentiostatic steps")
        elif isinstance(step, Eis):
            _check_eis(path, step.spec, cell, caps)
        elif isinstance(step, Rest | Loop):
            pass
