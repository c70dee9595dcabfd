"""Facts about the bundled data that several test files check against."""

from __future__ import annotations

HSB_COLUMNS = [
    "school", "math", "female", "minority", "ses", "meanses",
    "catholic", "size", "pracad", "disclim", "himinty",
]  # fmt: skip
"""The columns of the bundled HSB data, in their order in the file."""
