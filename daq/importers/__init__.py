"""Vendor recordings (Gamry .DTA, BioLogic .mpr/.mpt, plain spectra as text) read into one neutral, SI
form: :class:`Recording`.

``read_recording(path)`` picks the reader from the file's first bytes (its magic), falling back to the
extension only to word the error. Every failure to read is a :class:`~daq.core.errors.DataFileError` that
names the file and what could not be read.
"""

from __future__ import annotations

from pathlib import Path

from daq.importers._biologic import TECHNIQUE_CODES as ECLAB_TECHNIQUES  # code -> (technique, short name, title)
from daq.importers._common import fail
from daq.importers.biologic_mpr import MAGIC as _MPR_MAGIC
from daq.importers.biologic_mpr import read_mpr
from daq.importers.biologic_mpt import read_mpt
from daq.importers.gamry_dta import read_dta
from daq.importers.recording import TECHNIQUES, Recording, Spectrum
from daq.importers.spectrum_text import (
    ZPLOT_MAGIC,
    is_chi,
    is_parstat,
    is_spectrum_table,
    is_versastudio,
    is_zplot_windows,
    read_chi,
    read_csv_spectrum,
    read_parstat,
    read_versastudio,
    read_zplot,
    read_zplot_windows,
)

__all__ = [
    "ECLAB_TECHNIQUES",
    "Recording",
    "Spectrum",
    "TECHNIQUES",
    "read_recording",
    "read_mpr",
    "read_mpt",
    "read_dta",
    "read_csv_spectrum",
    "read_zplot",
    "read_parstat",
    "read_zplot_windows",
    "read_chi",
    "read_versastudio",
]

_BY_EXTENSION = {".mpr": "a BioLogic .mpr file", ".mpt": "an EC-Lab text export", ".dta": "a Gamry EXPLAIN file"}


def read_recording(path: str | Path) -> Recording:
    """Read any supported vendor recording, choosing the format by content."""
    path = Path(path)
    if path.is_dir():
        raise fail(path, "is a directory, not a recording")
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise fail(path, f"cannot be opened ({exc.strerror or exc})") from None
    if head.startswith(_MPR_MAGIC[:22]):
        return read_mpr(path)
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"EC-Lab ASCII FILE"):
        return read_mpt(path)
    if text.startswith((b"EXPLAIN", b"VFP600")):
        return read_dta(path)
    if text.startswith(ZPLOT_MAGIC.encode()):
        return read_zplot(path)
    try:  # whole lines only, so a character cut at the end of the head does not count
        words = text[: text.rfind(b"\n") + 1 or len(text)].decode("utf-8")
    except UnicodeDecodeError:
        words = text.decode("cp1252", errors="replace")
    first = words.split("\n", 1)[0]
    if is_parstat(first):
        return read_parstat(path)
    if is_zplot_windows(first):
        return read_zplot_windows(path)
    if is_versastudio(words):
        return read_versastudio(path)
    if is_chi(words):
        return read_chi(path)
    if path.suffix.lower() == ".csv" or is_spectrum_table(first):
        return read_csv_spectrum(path)
    if not head:
        raise fail(path, "is empty")
    expected = _BY_EXTENSION.get(path.suffix.lower())
    if expected:
        raise fail(path, f"has the extension of {expected} but not its content (wrong or damaged file header)")
    raise fail(
        path,
        "is not a recognised recording (expected a Gamry .DTA, BioLogic .mpr or EC-Lab .mpt file, or a "
        "spectrum as .csv, ZPlot/ZView .z, CH Instruments, Parstat, PowerSuite or VersaStudio text)",
    )
