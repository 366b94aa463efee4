"""Statements to the server in pipelines: several statements, one round trip.

Loopback round trips are cheap (~20 µs) but an event needs several statements, and psycopg's
own cursor layer costs ~10-20 µs of Python per statement (its pipeline mode more). So the
per-event path talks to libpq directly, through psycopg's ``pq`` binding: :meth:`Wire.send`
sends a batch of statements in libpq's pipeline mode and waits for all their results at once.
Each distinct statement text is prepared on the server the first time it is sent (in the same
round trip) and executed by name after that, so the server plans it once per connection.

Parameters and results travel in text format (:mod:`.codec`). A failed statement aborts the
rest of its batch (the server skips them); :meth:`Wire.send` reads the batch to its end and
raises :class:`Failure` with the SQLSTATE and the index of the statement that failed. A wait
interrupted by a signal (Ctrl-C) cancels the batch on the server and reads it to its end, so
the connection stays usable (to roll back, say) before the interruption goes on.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import pq

from .codec import Decoder, Param, decoder, encode

Command = tuple[str, Sequence[Param] | None]

_FATAL = pq.ExecStatus.FATAL_ERROR
_SYNC = pq.ExecStatus.PIPELINE_SYNC
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_SQLSTATE = pq.DiagnosticField.SQLSTATE
_PRIMARY = pq.DiagnosticField.MESSAGE_PRIMARY
#: how often a wait looks whether a cancel was requested
_TICK_MS = 100
#: SQLSTATE for a connection that is gone (ours; the server's own are in class 08 and 57P0x)
LOST = "08006"


class Failure(Exception):
    """A statement of a batch failed (``index``: its place in the batch), or the connection
    was lost (``lost``)."""

    def __init__(self, sqlstate: str, message: str, index: int, lost: bool = False) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.index = index
        self.lost = lost


class Result:
    """One statement's result: its rows (decoded) and how many rows it changed."""

    __slots__ = ("affected", "rows")

    def __init__(self, rows: list[tuple[Any, ...]], affected: int) -> None:
        self.rows = rows
        self.affected = affected


class Wire:
    """One connection's per-event statements, sent in pipelines. Counts statements and round
    trips (:attr:`statements`, :attr:`round_trips`) for the benchmarks."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.pg = conn.pgconn
        self._names: dict[str, bytes] = {}
        self._decoders: dict[str, list[Decoder]] = {}
        self._poll = select.poll()
        self._poll.register(self.pg.socket, select.POLLIN)
        self.statements = 0
        self.round_trips = 0
        self.lost = False
        #: set (by a deferred Ctrl-C, see :mod:`.tx`) to cancel what the server is doing: the
        #: batch then ends early, with an error, and the caller rolls its event back
        self.cancel_requested = False

    def query(self, sql: str, params: Sequence[Param] | None = None) -> list[tuple[Any, ...]]:
        """The rows of one statement (one round trip)."""
        return self.send([(sql, params)])[0].rows

    def send(self, commands: Sequence[Command]) -> list[Result]:
        """Run ``commands`` in order, in one round trip; their results, in order."""
        if self.lost:
            raise Failure(LOST, "the connection to the server was lost earlier", 0, True)
        pg = self.pg
        # what each result read back answers: -1 a statement's preparation, i >= 0 command i
        slots: list[int] = []
        fresh: dict[str, bytes] = {}
        synced = False
        try:
            pg.enter_pipeline_mode()
            for index, (sql, params) in enumerate(commands):
                name = self._names.get(sql) or fresh.get(sql)
                if name is None:
                    name = fresh[sql] = b"i%d" % (len(self._names) + len(fresh))
                    pg.send_prepare(name, sql.encode("utf-8"))
                    slots.append(-1)
                values = None if params is None else [encode(p) for p in params]
                pg.send_query_prepared(name, values)
                slots.append(index)
            pg.pipeline_sync()
            synced = True
            self._flush()
        except psycopg.Error as exc:
            raise self._lose(str(exc)) from None
        except BaseException:
            self._recover(synced)
            raise
        self.statements += len(commands)
        self.round_trips += 1
        try:
            return self._collect(commands, slots, fresh)
        except Failure:
            raise
        except psycopg.Error as exc:
            raise self._lose(str(exc)) from None
        except BaseException:
            self._recover(True)
            raise

    def _collect(
        self, commands: Sequence[Command], slots: list[int], fresh: dict[str, bytes]
    ) -> list[Result]:
        results: list[Result] = [_EMPTY] * len(commands)
        failure: Failure | None = None
        pending_names = list(fresh.items())
        for slot in slots:
            res = self._next()
            if res is None:
                raise self._lose("the server closed the connection")
            status = res.status
            if status == _FATAL:
                state = (res.error_field(_SQLSTATE) or b"").decode("ascii", "replace")
                if self.pg.status == pq.ConnStatus.BAD or state[:2] == "08" or state[:4] == "57P0":
                    raise self._lose(_message(res))  # the server ended the session
                if failure is None:
                    failure = Failure(state or "XX000", _message(res), max(slot, 0))
            elif slot == -1:
                if status in _OK:
                    sql, name = pending_names.pop(0)
                    self._names[sql] = name
            elif status in _OK:
                results[slot] = self._result(commands[slot][0], res)
            if self._next() is not None:  # each statement's results end with a null
                raise self._lose("unexpected results from the server")
        end = self._next()
        if end is None or end.status != _SYNC:
            raise self._lose("the server did not finish the batch")
        self.pg.exit_pipeline_mode()
        if failure is not None:
            raise failure
        return results

    def _result(self, sql: str, res: pq.abc.PGresult) -> Result:
        count = res.ntuples
        affected = res.command_tuples or 0
        if not count:
            return Result([], affected)
        width = res.nfields
        decoders = self._decoders.get(sql)
        if decoders is None:
            decoders = self._decoders[sql] = [decoder(res.ftype(c)) for c in range(width)]
        get = res.get_value
        rows = []
        for r in range(count):
            row = []
            for c in range(width):
                raw = get(r, c)
                row.append(None if raw is None else decoders[c](bytes(raw)))
            rows.append(tuple(row))
        return Result(rows, affected)

    # waiting -----------------------------------------------------------------------------
    def _flush(self) -> None:
        """Send what libpq has buffered (the connection is non-blocking)."""
        pg = self.pg
        while pg.flush():
            select.select([pg.socket], [pg.socket], [])
            pg.consume_input()

    def _next(self) -> pq.abc.PGresult | None:
        """The next result, waiting for it; a cancel requested meanwhile is sent once."""
        pg = self.pg
        canceled = False
        while pg.is_busy():
            if not self._poll.poll(_TICK_MS) and self.cancel_requested and not canceled:
                pg.get_cancel().cancel()
                canceled = True
                continue
            pg.consume_input()
        return pg.get_result()

    def _lose(self, why: str) -> Failure:
        self.lost = True
        return Failure(LOST, " ".join(why.split()) or "the connection was closed", 0, True)

    def _recover(self, synced: bool) -> None:
        """After an interrupted send or wait: cancel what the server is doing and read the batch
        to its end, so the connection can roll back; when that fails too, it is lost."""
        pg = self.pg
        try:
            if pg.pipeline_status == pq.PipelineStatus.OFF:
                return
            if not synced:
                pg.pipeline_sync()
            pg.get_cancel().cancel()
            self._flush()
            for _ in range(100_000):  # results of at most a batch, with their nulls
                res = self._next()
                if res is None:
                    if pg.status == pq.ConnStatus.BAD:
                        break
                    continue
                if res.status == _SYNC:
                    pg.exit_pipeline_mode()
                    return
            self.lost = True
        except BaseException:
            self.lost = True

    def close(self) -> None:
        self.lost = True
        self.conn.close()


_EMPTY = Result([], 0)


def _message(res: pq.abc.PGresult) -> str:
    primary = res.error_field(_PRIMARY)
    text = primary if primary is not None else res.error_message
    return " ".join(text.decode("utf-8", "replace").split())
