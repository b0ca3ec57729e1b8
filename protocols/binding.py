"""Check a protocol against the cell and the instrument before any current flows."""

from __future__ import annotations

from collections.abc import Iterator

from daq.core import units as u
from daq.core.capabilities import Capabilities
from daq.core.errors import ConfigError
from daq.models.cell import Cell
from protocols import limits as L
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


def _check_step_length(path: str, step: Galvanostatic) -> None:
    """A step ended by its capacity alone must end within the longest step and sample count allowed."""
    if step.capacity is None or step.duration is not None:
        return
    duration = step.capacity / step.current_density
    if duration > L.MAX_DURATION or duration / step.sample_period > L.MAX_SAMPLES_PER_STEP:
        raise ConfigError(
            f"{path}.capacity",
            u.fmt(step.capacity, "mAh/cm^2"),
            f"takes {duration / L.DAY:.3g} days at {u.fmt(step.current_density, 'mA/cm^2')} "
            f"({duration / step.sample_period:.3g} samples); at most {L.MAX_DURATION / L.DAY:.0f} days and "
            f"{L.MAX_SAMPLES_PER_STEP:.0e} samples per step",
        )


def _check_voltages(path: str, step: Step, caps: Capabilities) -> None:
    """Voltage limits and set potentials must lie within the instrument's compliance."""
    fields: list[tuple[str, float | None]] = []
    if isinstance(step, Galvanostatic):
        fields = [("v_min", step.v_min), ("v_max", step.v_max)]
    elif isinstance(step, Potentiostatic):
        fields = [("potential", step.potential)]
    elif isinstance(step, Eis) and step.spec.mode == "potentiostatic":
        fields = [("dc", step.spec.dc)]
    for name, value in fields:
        if value is not None and abs(value) > caps.max_voltage:
            raise ConfigError(
                f"{path}.{name}",
                u.fmt(value, "V"),
                f"beyond the instrument's compliance of ±{caps.max_voltage:g} V",
            )


def check(protocol: Protocol, cell: Cell, caps: Capabilities) -> None:
    """Raise ConfigError for anything the cell or instrument cannot do."""
    for path, step in walk_paths(protocol.steps):
        _check_voltages(path, step, caps)
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
            _check_step_length(path, step)
            if step.operando_eis is not None:
                _check_eis(f"{path}.operando_eis", step.operando_eis, cell, caps)
        elif isinstance(step, Potentiostatic) and not caps.potentiostatic:
            raise ConfigError(f"{path}.kind", step.kind, "the instrument cannot run potentiostatic steps")
        elif isinstance(step, Eis):
            _check_eis(path, step.spec, cell, caps)
        elif isinstance(step, Rest | Loop):
            pass
