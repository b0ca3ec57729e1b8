"""yadg's reading of an EC-Lab text export, the independent reference of the synthetic-file tests."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np


def yadg_columns(path: Path) -> dict[str, np.ndarray]:
    """Every data variable yadg reads from the .mpt or .mpr at ``path`` (its names, -Im(Z) as written)."""
    from yadg.extractors import extract

    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = extract(filetype=f"eclab{path.suffix}", path=str(path), encoding="windows-1252", timezone="UTC")
    finally:
        logging.disable(logging.NOTSET)
    ds = ds.to_dataset() if hasattr(ds, "to_dataset") else ds
    numeric = (n for n in ds.data_vars if np.asarray(ds[n].values).dtype.kind in "biuf")  # not '100 µA' ranges
    return {n: np.asarray(ds[n].values, dtype=float) for n in numeric}
