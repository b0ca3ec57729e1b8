"""Names of run files made from user text (protocol name, cell id)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path


def default_out(protocol_name: str, cell_id: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{protocol_name}-{cell_id}").strip("-").lower()
    return Path("runs") / f"{slug}-{datetime.now():%Y%m%d-%H%M%S}.h5"


def safe_name(text: str, fallback: str = "run", limit: int = 64) -> str:
    """A file-name component from user text: letters, digits, '.', '_', '+' and '-' only, never empty,
    never '.' or '..', at most ``limit`` characters, so it cannot leave the folder it is joined to."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._")[:limit]
    return name or fallback


def confined(folder: str | Path, name: str) -> Path:
    """``folder / name`` with ``name`` made safe; raises ValueError if the result would leave ``folder``."""
    base = Path(folder).resolve()
    path = (base / safe_name(name)).resolve()
    if path.parent != base:
        raise ValueError(f"{name!r} does not name a file inside {base}")
    return path
