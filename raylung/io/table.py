"""Tables of cases (CSV or parquet) as ingest and segment read them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from raylung.errors import InputError, first_line


def read_table(path: Path, required: Sequence[str], what: str = "table") -> pd.DataFrame:
    """A CSV (every cell text, an empty cell "") or parquet table with the ``required``
    columns and at least one row; anything else is an ``InputError`` naming ``path``."""
    try:
        table = (pd.read_parquet(path) if path.suffix == ".parquet"
                 else pd.read_csv(path, dtype=str, keep_default_na=False))
    except Exception as err:  # noqa: BLE001 - pandas raises many types for a malformed table
        raise InputError(path, f"unreadable {what} ({first_line(err)})") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputError(path, f"{what} lacks column(s) {', '.join(missing)}")
    if table.empty:
        raise InputError(path, f"{what} has no rows")
    return table


def cell_text(value: object) -> str | None:
    """A stripped string, or None for an empty or missing table cell (a CSV's "", a parquet
    table's None or NaN)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value).strip() or None
