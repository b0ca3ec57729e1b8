"""Reading run files back: finished, interrupted, or being written by another process (SWMR).

Tables come back as pandas DataFrames in SI with units in ``df.attrs["units"]``.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from daq.core import units as u
from daq.core.errors import DataFileError
from daq.core.records import ResumePoint
from daq.storage import layout as L
from daq.storage.hdf5 import file_access, open_h5
from daq.storage.lock import writer_alive
from daq.storage.recovery import check_structure, writer_flag_set

if TYPE_CHECKING:  # imported where tables are built: opening a run file needs no pandas
    import pandas as pd

CURRENT_DENSITY_UNIT, AREAL_CAPACITY_UNIT = "mA/cm^2", "mAh/cm^2"


def _decode(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _table(ds: h5py.Dataset, start: int = 0, stop: int | None = None) -> pd.DataFrame:
    import pandas as pd

    data = ds[start:stop]
    # Text columns stay text even when the table is empty (so .str works on a run with no steps yet).
    df = pd.DataFrame(
        {
            name: pd.Series([_decode(v) for v in data[name]], dtype="str")
            if data.dtype[name].kind == "O"
            else data[name]
            for name in data.dtype.names
        }
    )
    df.attrs["units"] = json.loads(ds.attrs.get("units", "{}"))
    return df


class RunFile:
    """A run file opened for reading. Safe on files another process is still writing."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise DataFileError(f"{self.path}: no such run file")
        live = writer_alive(self.path)
        check_structure(self.path, live)  # damage the HDF5 library might loop on, named before it looks
        try:
            # A file whose writer is live (or died with the writer flag set) is read in SWMR mode.
            swmr = writer_flag_set(self.path) or live
            self.f = _open_swmr(self.path) if swmr else open_h5(self.path, "r")
        except _DAMAGE as exc:
            raise DataFileError(f"{self.path}: not a readable run file ({exc})") from None
        try:
            is_run = "timeseries" in self.f and "schema_version" in self.f.attrs
        except _DAMAGE as exc:
            self.f.close()
            raise _damaged(self.path, exc) from None
        if not is_run:
            self.f.close()
            raise DataFileError(f"{self.path}: not a run file of this product (no /timeseries or schema_version)")

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> RunFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> None:
        """See what a live writer appended since the last look."""
        for ds in self._datasets():
            ds.refresh()

    def _datasets(self) -> list[h5py.Dataset]:
        out = list(self.f["timeseries"].values()) + [self.f["steps"], self.f["events"]]
        return out + [self.f["eis/spectra"], self.f["eis/points"]]

    # --- metadata -----------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        return {k: _decode(v) for k, v in self.f.attrs.items()}

    @property
    def status(self) -> str:
        """'running' while a writer holds the run; a run whose end is not recorded reads 'interrupted'
        (the file itself says 'interrupted' until the end is recorded; older files said 'running')."""
        status = _decode(self.f.attrs.get("status", ""))
        if status in (L.RUNNING, L.INTERRUPTED):
            return L.RUNNING if writer_alive(self.path) else L.INTERRUPTED
        return status

    @property
    def cell(self) -> dict[str, Any]:
        return {k: _decode(v) for k, v in self.f["cell"].attrs.items() if k != "units"}

    @property
    def cell_units(self) -> dict[str, str]:
        return json.loads(self.f["cell"].attrs.get("units", "{}"))

    def prediction(self, name: str) -> dict[str, Any]:
        if name not in self.f["predictions"]:
            raise DataFileError(f"{self.path}: no prediction '{name}'")
        return {k: _decode(v) for k, v in self.f["predictions"][name].attrs.items()}

    @property
    def protocol_source(self) -> str:
        return _decode(self.f["protocol/source"][()])

    @property
    def protocol_overrides(self) -> dict[str, Any]:
        return json.loads(_decode(self.f["protocol"].attrs.get("overrides", "{}")))

    @property
    def cell_source(self) -> str:
        return _decode(self.f["cell/source"][()]) if "source" in self.f["cell"] else ""

    @property
    def cell_overrides(self) -> dict[str, Any]:
        return json.loads(_decode(self.f["cell"].attrs.get("overrides", "{}")))

    def _steps_done(self) -> int:
        """Protocol steps that finished: rows of /steps up to the first one an abort or a fault cut
        short (that step is resumed; rows after it record how the run ended, not protocol progress)."""
        reasons = self.f["steps"].fields("end_reason")[()] if len(self.f["steps"]) else []
        for index, reason in enumerate(reasons):
            if _decode(reason) in ("aborted", "fault", "interlock"):
                return index
        return len(reasons)

    def resume_point(self) -> ResumePoint:
        """Where an interrupted run stopped: finished steps, progress of the step cut short."""
        steps_done = self._steps_done()
        n = len(self)
        spectra = len(self.f["eis/spectra"])
        if n == 0:
            return ResumePoint(steps_done, 0.0, 0.0, 0.0, 0, spectra)
        last = n - 1
        t_last = float(self.f["timeseries/t"][last])
        if int(self.f["timeseries/step"][last]) != steps_done:
            return ResumePoint(steps_done, 0.0, 0.0, t_last, n, spectra)
        # first sample of the interrupted step: search back through the step column in chunks
        step_col = self.f["timeseries/step"]
        first, chunk = last, 65536
        while first > 0:
            lo = max(0, first - chunk)
            values = step_col[lo:first]
            other = np.flatnonzero(values != steps_done)
            if other.size:
                first = lo + int(other[-1]) + 1
                break
            first = lo
        t_prev = float(self.f["timeseries/t"][first - 1]) if first > 0 else 0.0
        return ResumePoint(steps_done, t_last - t_prev, float(self.f["timeseries/Q"][last]), t_last, n, spectra)

    # --- data ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.f["timeseries/t"])

    def columns(self) -> list[str]:
        return list(self.f["timeseries"].keys())

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.f["timeseries"][name][start:stop]

    def units(self) -> dict[str, str]:
        """Units of the stored /timeseries columns and of the two that timeseries() derives."""
        units = {name: _decode(ds.attrs["unit"]) for name, ds in self.f["timeseries"].items()}
        return units | {"current_density": CURRENT_DENSITY_UNIT, "areal_capacity": AREAL_CAPACITY_UNIT}

    def timeseries(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """Samples ``start``..``stop`` in the documented column order (docs/hdf5-layout.md: the layout's
        columns, then auxiliary channels), followed by ``current_density`` (mA/cm^2) and
        ``areal_capacity`` (mAh/cm^2, |Q| of the step per working-electrode area); units in
        ``df.attrs["units"]``."""
        import pandas as pd

        ts = self.f["timeseries"]
        n = min(len(ds) for ds in ts.values())  # columns are flushed together; guard a torn read
        stop = n if stop is None else min(stop, n)
        names = [c for c in (*L.TIMESERIES, *L.AUX) if c in ts] + sorted(set(ts) - set(L.TIMESERIES) - set(L.AUX))
        df = pd.DataFrame({name: ts[name][start:stop] for name in names})
        units = self.units()
        area = self.working_area
        df["current_density"] = u.to_unit(1.0, CURRENT_DENSITY_UNIT) * df["I"] / area
        df["areal_capacity"] = u.to_unit(1.0, AREAL_CAPACITY_UNIT) * df["Q"].abs() / area
        units.update(current_density=CURRENT_DENSITY_UNIT, areal_capacity=AREAL_CAPACITY_UNIT)
        df.attrs["units"] = {name: units[name] for name in df.columns}
        return df

    @property
    def working_area(self) -> float:
        """Working-electrode area (m^2) as the cell file gave it; NaN if the file does not say."""
        value = self.f["cell"].attrs.get("electrodes.working_area", np.nan)
        try:
            area = float(value)
        except (TypeError, ValueError):
            return float("nan")
        return area if area > 0 else float("nan")

    def steps(self) -> pd.DataFrame:
        return _table(self.f["steps"])

    def events(self) -> pd.DataFrame:
        return _table(self.f["events"])

    def spectra(self) -> pd.DataFrame:
        return _table(self.f["eis/spectra"])

    def spectrum(self, index: int) -> pd.DataFrame:
        row = self.f["eis/spectra"][index]
        first, n = int(row["first_point"]), int(row["n_points"])
        return _table(self.f["eis/points"], first, first + n).drop(columns="spectrum")


# --- SWMR reads of damaged files: bounded metadata retries -----------------------------------------
# A SWMR reader retries a metadata block whose checksum fails (it may be half-written), sleeping 1 ns,
# 2 ns, 4 ns ... between attempts; with HDF5's default of 100 attempts a damaged block never gives up.
# 20 attempts still ride out a torn read (about 1 ms in all). h5py does not wrap the setting, so it is
# set through the HDF5 library h5py has loaded; where that library cannot be found, HDF5's default stays.
_SWMR_READ_ATTEMPTS = 20


@functools.lru_cache(maxsize=1)
def _hdf5_read_attempts_setter() -> Any:
    import ctypes
    import glob

    candidates = []
    try:
        with open("/proc/self/maps") as maps:
            candidates = [line.split()[-1] for line in maps if "libhdf5" in line and "hdf5_hl" not in line]
    except OSError:
        pass
    base = os.path.dirname(h5py.__file__)
    for pattern in ("../h5py.libs/libhdf5-*", ".dylibs/libhdf5*.dylib", "hdf5.dll", "../h5py.libs/hdf5*.dll"):
        candidates += glob.glob(os.path.join(base, pattern))
    for path in candidates:
        try:
            fn = ctypes.CDLL(path).H5Pset_metadata_read_attempts
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int64, ctypes.c_uint], ctypes.c_int
        return fn
    return None


def _open_swmr(path: Path) -> h5py.File:
    setter = _hdf5_read_attempts_setter()
    if setter is None:
        return open_h5(path, "r", swmr=True)
    fapl = file_access()
    if setter(fapl.id, _SWMR_READ_ATTEMPTS) < 0:
        return open_h5(path, "r", swmr=True)
    return h5py.File(h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl))


# --- damaged files: every read names the file and what failed, never an h5py traceback ------------
_DAMAGE = (OSError, KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError)


def _damaged(path: Path, exc: BaseException) -> DataFileError:
    return DataFileError(f"{path}: damaged or unreadable run file ({type(exc).__name__}: {exc})")


def _accepts(fn: Any, self: RunFile, args: tuple, kwargs: dict) -> bool:
    """True if ``fn`` accepts these arguments (a TypeError inside it is then the file's doing)."""
    try:
        inspect.signature(fn).bind(self, *args, **kwargs)
    except TypeError:
        return False
    return True


def _guarded(fn: Any) -> Any:
    @functools.wraps(fn)
    def read(self: RunFile, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except DataFileError:
            raise
        except _DAMAGE as exc:
            if isinstance(exc, TypeError) and not _accepts(fn, self, args, kwargs):
                raise TypeError(f"{fn.__name__}() called with wrong arguments: {exc}") from None
            raise _damaged(self.path, exc) from None

    return read


for _name, _member in list(vars(RunFile).items()):
    if isinstance(_member, property) and _member.fget is not None:
        setattr(RunFile, _name, property(_guarded(_member.fget)))
    elif callable(_member) and (not _name.startswith("_") or _name == "__len__"):
        if _name not in ("close",):
            setattr(RunFile, _name, _guarded(_member))


def open_run(path: str | Path) -> RunFile:
    return RunFile(path)
