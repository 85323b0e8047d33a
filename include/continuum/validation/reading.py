"""Turn the bytes of a landed file into a frame, or say in one line why they are not data.

CSV is read with every column as text: a value like "abc" in an int column must reach
the suite as it was written, so the gate can name it, instead of being silently
turned into NaN (pandas) or making the whole read fail (type inference). pyarrow's
CSV reader is used because, unlike pandas, it refuses rows with too few fields.
Parquet keeps its own types; `checks` renders them as text where a check needs it.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# Written in CSVs for "no value". Deliberately short: a category such as "none" stays a value.
NULL_MARKERS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
_MAX_REASON = 200


class UnreadableBatch(ValueError):
    """A landed file that cannot be read as a table; `reason` is one line for the report."""

    def __init__(self, reason: str):
        self.reason = " ".join(reason.split())[:_MAX_REASON]
        super().__init__(f"unreadable batch: {self.reason}")


def _format(fmt: str) -> str:
    name = fmt.lower().lstrip(".")
    if name not in ("csv", "parquet"):
        raise UnreadableBatch(f"unsupported format '{fmt}'; land .csv or .parquet files")
    return name


def read_batch(data: bytes, fmt: str) -> pd.DataFrame:
    """The table in `data` ("csv" or "parquet"); raises UnreadableBatch for anything that is not one."""
    name = _format(fmt)
    if not data or not data.strip():
        raise UnreadableBatch("the file is empty")
    frame = _read_csv(data) if name == "csv" else _read_parquet(data)
    if frame.empty:
        raise UnreadableBatch("the file has a header but no data rows")
    return frame


def _header(data: bytes) -> list[str]:
    if b"\x00" in data[:4096]:
        raise UnreadableBatch("the file contains binary data (NUL bytes), not CSV text")
    first_line = data.split(b"\n", 1)[0]
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableBatch(
            f"the file is not UTF-8 text (byte 0x{first_line[exc.start]:02x} on line 1); save it as UTF-8"
        ) from exc
    names = next(csv.reader([text.rstrip("\r")]), [])
    if not names or not any(n.strip() for n in names):
        raise UnreadableBatch("the first line is not a CSV header")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise UnreadableBatch(f"duplicated column names in the header: {duplicated}")
    return names


def _require_utf8(data: bytes) -> None:
    """Name the first non-UTF-8 byte and its line: pyarrow only says "invalid UTF8 data" in some column.

    Files exported from spreadsheets are often latin-1 or cp1252; decoding is ~1 GB/s, cheap
    next to parsing.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UnreadableBatch(
            f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from exc


def _read_csv(data: bytes) -> pd.DataFrame:
    import pyarrow as pa
    from pyarrow import csv as pacsv

    names = _header(data)
    _require_utf8(data)
    options = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=NULL_MARKERS,
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    try:
        table = pacsv.read_csv(io.BytesIO(data), convert_options=options)
    except pa.ArrowException as exc:  # wrong field counts, invalid UTF-8, broken quoting
        raise UnreadableBatch(f"not a valid CSV table: {exc}") from exc
    return table.to_pandas()


def _read_parquet(data: bytes) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    try:
        return pd.read_parquet(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as exc:  # truncated, not parquet, bad footer
        raise UnreadableBatch(f"not a readable parquet file: {exc}") from exc
