"""Names of run files made from user text (protocol name, cell id)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path


def default_out(protocol_name: str, cell_id: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{protocol_name}-{cell_id}").strip("-").lower()
    return Path("runs") / f"{slug}-{datetime.now():%Y%m%d-%H%M%S}.h5"
