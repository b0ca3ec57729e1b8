"""``daq export FILE``: a run's tables as files other tools open (CSV, EC-Lab text, Gamry text, Parquet).

- ``csv``: one header row with the unit in each column name (``E_we (V)``), values in SI, full precision
  (floats written with 17 significant digits, so reading the file back gives the stored numbers);
- ``mpt``: the EC-Lab text export layout (``EC-Lab ASCII FILE``, ``Nb header lines : N``, header, the
  tab-separated column labels on line N, tab-separated rows) with EC-Lab's column labels and units
  (``time/s``, ``Ewe/V``, ``I/mA``, ``(Q-Qo)/mA.h``, ``freq/Hz``, ``Re(Z)/Ohm``, ``-Im(Z)/Ohm``);
- ``dta``: the Gamry EXPLAIN text layout Echem Analyst reads (``EXPLAIN``, ``TAG``, header entries,
  a ``CURVE TABLE`` with a name row and a unit row), time series only;
- ``parquet``: typed columns with units in the names (needs pyarrow).

Tables: ``timeseries`` (every sample), ``steps``, ``cycles`` (/analysis/cycles), ``spectra`` (every
impedance point, with its spectrum number). Time series are written a block at a time, so memory stays
flat with run length. docs/export.md gives the layouts and where they were checked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from daq.core.errors import ConfigError, DataFileError

FORMATS = ("csv", "mpt", "dta", "parquet")
TABLES = ("timeseries", "steps", "cycles", "spectra")
SUPPORTED = {"csv": TABLES, "parquet": TABLES, "mpt": ("timeseries", "spectra"), "dta": ("timeseries",)}
SUFFIX = {"csv": ".csv", "mpt": ".mpt", "dta": ".DTA", "parquet": ".parquet"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's data as CSV, EC-Lab .mpt, Gamry .DTA or Parquet",
        description="Write one table of a run file in a format other tools open. Units are in the column names.",
    )
    p.add_argument("file", help="run file (.h5)")
    p.add_argument("--format", choices=FORMATS, default="csv", help="file format (default csv)")
    p.add_argument("--what", choices=TABLES, default="timeseries", help="which table (default timeseries)")
    p.add_argument("--out", help="output file (default: FILE_<what>.<ext> beside the run file)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise DataFileError(f"{args.file!r}: no such run file")
    if args.what not in SUPPORTED[args.format]:
        raise ConfigError(
            "--what",
            args.what,
            f"the {args.format} format holds {' or '.join(SUPPORTED[args.format])}; use --format csv",
        )
    if args.format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--format", "parquet", "needs pyarrow (pip install pyarrow); or use --format csv"
            ) from None
    out = Path(args.out) if args.out else path.with_name(f"{path.stem}_{args.what}{SUFFIX[args.format]}")
    if out.exists() and not args.force:
        raise ConfigError("--out", str(out), "already exists; choose another name or add --force to overwrite it")
    from daq.commands.export_writers import export
    from daq.storage.probe import probe_readable

    probe_readable(path)
    rows = export(path, out, args.format, args.what)
    print(f"{out}: {rows} rows of {args.what} ({args.format})")
    return 0
