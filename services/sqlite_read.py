"""One read of an SQLite file in a process of its own, for the nightly classification.

    python -m services.sqlite_read FILE < query.sql > rows.f8

Runs the query read from stdin and writes its rows to stdout as float64 values, row after
row; every column must be a number. One SQLite library in one process serialises its
connections on shared locks, so reads meant to run side by side need processes of their
own. This module imports only numpy and the standard library: a child that imported
carebot, or the program that started it, would spend about a second on imports first.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np
from numpy.typing import NDArray

PARTITION = 50_000


def as_floats(rows: Sequence[Sequence[Any]], columns: int) -> NDArray[np.float64]:
    """Rows of numbers as a float64 array of `columns` columns."""
    values = chain.from_iterable(rows)
    block = np.fromiter(values, dtype=np.float64, count=columns * len(rows))
    return block.reshape(-1, columns)


def main() -> None:
    path, query = sys.argv[1], sys.stdin.read()
    connection = sqlite3.connect(path)
    try:
        cursor = connection.execute(query)
        columns = len(cursor.description)
        while partition := cursor.fetchmany(PARTITION):
            sys.stdout.buffer.write(as_floats(partition, columns).tobytes())
    finally:
        connection.close()


if __name__ == "__main__":
    main()
