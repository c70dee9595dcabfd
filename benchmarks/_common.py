"""Shared helpers of the benchmark scripts: one JSON line per case on stdout."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any


def emit(case: str, **fields: Any) -> None:
    """Print one benchmark record as a JSON line."""
    record = {
        "case": case,
        **fields,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
