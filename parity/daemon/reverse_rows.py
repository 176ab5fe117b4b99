"""Postgres rows by primary key, for the reverse direction (the rollback copy being checked).

One autocommit connection, kept open between batches and opened again after a failure: every
read sees the newest committed row (a recheck wants the application's late write). A failure to
reach Postgres is raised as `PostgresUnavailable` (a TransientError: the reverse loop redoes its
batch from the stream's checkpoint once Postgres is back).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Protocol

import psycopg

from parity.adapters.clients import PostgresSource, connect_postgres
from parity.core.config import TableMapping
from parity.core.errors import TransientError
from parity.reconcilers.postgres import columns_read, row_query


class PostgresUnavailable(TransientError):
    """Postgres did not answer a row read; the reverse loop redoes the batch."""


class RowReads(Protocol):
    def row(self, mapping: TableMapping, primary_key: Mapping[str, str]) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


class PostgresRows:
    def __init__(self, source: PostgresSource, *, statement_timeout_s: float = 30.0) -> None:
        self.source = source
        self.statement_timeout_s = statement_timeout_s
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = connect_postgres(self.source, autocommit=True)
                self._conn.execute(f"SET statement_timeout = {int(self.statement_timeout_s * 1000)}")
            except Exception as exc:
                self._conn = None
                raise PostgresUnavailable(f"Postgres: {exc}") from exc
        return self._conn

    def row(self, mapping: TableMapping, primary_key: Mapping[str, str]) -> dict[str, Any] | None:
        conn = self._connection()
        try:
            found = conn.execute(row_query(mapping), [primary_key[c] for c in mapping.primary_key]).fetchone()
        except psycopg.errors.DataError:
            return None  # the key text does not parse as the column's type: no such row
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            raise PostgresUnavailable(f"Postgres: {exc}") from exc
        if found is None:
            return None
        return dict(zip(columns_read(mapping), found, strict=True))

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection; nothing more to do
                self._conn.close()
            self._conn = None
