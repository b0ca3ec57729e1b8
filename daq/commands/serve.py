"""``daq serve DIR [--port P] [--api-key K]``: a folder of run files, read-only over HTTP with Tiled.

Each run file becomes one entry (named after the file) whose groups Tiled's own HDF5 adapter reads
lazily, with the run's cell, protocol, outcome and date as metadata to search on. Anyone with the API
key reads any run from Python (``tiled.client.from_uri(URL, api_key=K)``) or over HTTP; nothing can
be written. Tiled is imported only here (``pip install 'sse-rig[lab]'``).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
from pathlib import Path
from typing import Any

import h5py

from daq.core.errors import ConfigError

SERVED_GROUPS = ("timeseries", "predictions", "steps", "events")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a folder of run files read-only over HTTP (Tiled)",
        description="Serve every run file (*.h5) of DIR read-only with Tiled, searchable by cell, protocol, "
        "outcome and date. Clients need the API key (--api-key, or DAQ_SERVE_API_KEY; printed if generated).",
    )
    p.add_argument("directory", metavar="DIR", help="folder of run files")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: the whole lab network)")
    p.add_argument("--api-key", help="the key clients must present (letters and digits)")
    p.set_defaults(func=cmd_serve)


def run_metadata(path: Path) -> dict[str, Any]:
    """What a run is searched by: cell, protocol, outcome, status, date (YYYY-MM-DD), rig, channel."""
    with h5py.File(path, "r", locking=False) as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    start = str(attrs.get("start_time", ""))
    return {
        "file": path.name,
        "cell": str(attrs.get("cell_id", "")),
        "protocol": str(attrs.get("protocol", "")),
        "outcome": str(attrs.get("outcome", "")),
        "status": str(attrs.get("status", "")),
        "date": start[:10],
        "start_time": start,
        "end_time": str(attrs.get("end_time", "")),
        "rig": str(attrs.get("rig", "")),
        "channel": str(attrs.get("channel", "")),
    }


def archive_tree(directory: Path) -> Any:
    """A Tiled tree of the run files in ``directory``; unreadable files are skipped and named."""
    from tiled.adapters.hdf5 import HDF5Adapter
    from tiled.adapters.mapping import MapAdapter

    runs: dict[str, Any] = {}
    for path in sorted(directory.glob("*.h5")):
        try:
            meta = run_metadata(path)
            h5 = HDF5Adapter.from_uris(path.resolve().as_uri())
        except (OSError, KeyError, ValueError) as exc:
            print(f"daq serve: skipped {path.name}: {exc}")
            continue
        groups = {}
        for group in SERVED_GROUPS:
            try:
                groups[group] = h5[group]
            except (KeyError, ValueError, TypeError):  # a table Tiled cannot map: the run still serves
                continue
        runs[path.stem] = MapAdapter(groups, metadata=meta)
    return MapAdapter(runs, metadata={"kind": "sse-rig run archive", "runs": len(runs)})


def cmd_serve(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if not directory.is_dir():
        raise ConfigError("DIR", args.directory, "no such folder")
    if not 0 < args.port < 65536:
        raise ConfigError("--port", args.port, "must be from 1 to 65535")
    key = args.api_key or os.environ.get("DAQ_SERVE_API_KEY")
    if key is not None and not re.fullmatch(r"[A-Za-z0-9]{8,}", key):
        raise ConfigError("--api-key", "...", "must be at least 8 letters and digits")
    try:
        import uvicorn
        from tiled.config import Authentication
        from tiled.server.app import build_app
    except ImportError:
        raise ConfigError("daq serve", None, "needs Tiled: pip install 'sse-rig[lab]'") from None
    if key is None:
        key = secrets.token_hex(16)
        print(f"API key (give it to the lab's readers): {key}")
    tree = archive_tree(directory)
    app = build_app(tree, authentication=Authentication(single_user_api_key=key, allow_anonymous_access=False))
    print(f"serving {len(list(tree))} runs of {directory} read-only at http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
