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
from itertools import chain

import numpy as np

PARTITION = 50_000


def main() -> None:
    path, query = sys.argv[1], sys.stdin.read()
    connection = sqlite3.connect(path)
    try:
        cursor = connection.execute(query)
        columns = len(cursor.description)
        while partition := cursor.fetchmany(PARTITION):
            values = chain.from_iterable(partition)
            block = np.fromiter(values, dtype=np.float64, count=columns * len(partition))
            sys.stdout.buffer.write(block.tobytes())
    finally:
        connection.close()


if __name__ == "__main__":
    main()
