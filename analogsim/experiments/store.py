"""SQLite results store: one row per sweep point, written as each run finishes.

The store is a single SQLite file (stdlib :mod:`sqlite3`) with one table, ``runs``:

================  =======  ==================================================================
column            type     meaning
================  =======  ==================================================================
point_id          TEXT     primary key: first 16 hex chars of sha256 of the point's JSON
sweep             TEXT     name of the sweep that (last) ran the point
status            TEXT     ``'running'`` (dispatched, not finished), ``'done'``, ``'diverged'``
                           (finished, training diverged) or ``'failed'``
point_json        TEXT     the point, a flat ``{key: value}`` dict
config_json       TEXT     full resolved config, as returned by the run function
metrics_json      TEXT     per-epoch metrics list
ledger_json       TEXT     cost-ledger totals
summary_json      TEXT     final scalar metrics (``test_accuracy``, ``energy_per_sample_pj``...)
extra_json        TEXT     any other keys the run function returned (``{}`` if none)
error             TEXT     traceback text of a failed run
wall_time         REAL     seconds spent in the run function
versions_json     TEXT     python, numpy, numba and analogsim versions of the worker
seed              INTEGER  the point's ``seed`` when it is an integer
started_at        TEXT     ISO 8601 UTC time the run started (dispatch time while running)
finished_at       TEXT     ISO 8601 UTC time the run finished
================  =======  ==================================================================

Durability and concurrency
--------------------------
Every write is one ``BEGIN IMMEDIATE`` transaction, so a killed sweep loses at most the runs in
flight (their rows stay ``'running'`` and are redone on resume).  The file uses WAL journaling,
which lets readers (a notebook plotting partial results) run while the sweep writes, and a
``busy_timeout`` so that two processes writing the same file wait for each other instead of
failing with "database is locked".  ``synchronous=NORMAL`` keeps every committed transaction
across a process crash; only an operating-system crash or power loss can drop the last few.

Values are stored as JSON.  NumPy scalars and arrays (anything with ``tolist``) and dataclasses
are converted; NaN and infinities are kept (Python's JSON dialect) because a diverged run's
metrics legitimately contain them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["STATUSES", "ResultsStore", "to_json", "utc_now"]

STATUSES = ("running", "done", "diverged", "failed")

#: Bumped when the schema changes; :meth:`ResultsStore._migrate` upgrades older files.
#: 2: status ``'diverged'``. 3: table ``members`` (which sweeps list which points).
#: 4: columns ``owner`` and ``lease_until`` (claims of concurrent drivers).
SCHEMA_VERSION = 4

_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    point_id      TEXT PRIMARY KEY,
    sweep         TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('running', 'done', 'diverged', 'failed')),
    point_json    TEXT NOT NULL,
    config_json   TEXT,
    metrics_json  TEXT,
    ledger_json   TEXT,
    summary_json  TEXT,
    extra_json    TEXT,
    error         TEXT,
    wall_time     REAL,
    versions_json TEXT,
    seed          INTEGER,
    started_at    TEXT,
    finished_at   TEXT,
    owner         TEXT,
    lease_until   REAL
)"""
_SCHEMA = _TABLE.format(name="runs") + """;
CREATE INDEX IF NOT EXISTS runs_sweep ON runs (sweep);
CREATE TABLE IF NOT EXISTS members (
    sweep         TEXT NOT NULL,
    point_id      TEXT NOT NULL,
    point_json    TEXT NOT NULL,
    PRIMARY KEY (sweep, point_id)
);
"""

_COLUMNS = ("point_id", "sweep", "status", "point_json", "config_json", "metrics_json",
            "ledger_json", "summary_json", "extra_json", "error", "wall_time", "versions_json",
            "seed", "started_at", "finished_at")
#: The columns of a sweep's view of a row: its own point form and name from ``members``.
_JOIN_COLUMNS = ", ".join("m.sweep" if c == "sweep" else "m.point_json" if c == "point_json"
                          else f"r.{c}" for c in _COLUMNS)


def _json_default(obj: Any) -> Any:
    """Convert the non-JSON objects a run function commonly returns."""
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, without importing numpy
        return obj.tolist()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable: {obj!r}")


def to_json(obj: Any) -> str:
    """Encode ``obj`` as JSON with sorted keys (numpy values and dataclasses allowed).

    Parameters
    ----------
    obj : Any
        Value to encode.

    Returns
    -------
    str
        Compact JSON text.

    Raises
    ------
    TypeError
        If ``obj`` holds a value that cannot be converted.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def utc_now() -> str:
    """Current UTC time as an ISO 8601 string with millisecond precision."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _seed_of(point: dict[str, Any]) -> int | None:
    seed = point.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def _check_point_id(point_id: Any) -> None:
    if not isinstance(point_id, str) or not point_id:
        raise ValueError(f"point_id = {point_id!r} is invalid; allowed: a non-empty string")


def owner_name() -> str:
    """A driver's claim name: ``host:pid:random`` (unique even if a pid is reused)."""
    return f"{platform.node()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str) -> bool:
    """``False`` only for an owner on this host whose process is gone (its claims are free
    at once); owners on other hosts count as alive until their lease expires."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != platform.node() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, not ours to signal
        return True
    return True


_ADD_MEMBER = "INSERT OR IGNORE INTO members (sweep, point_id, point_json) VALUES (?, ?, ?)"

#: Seconds of waiting for the write lock before the store says on stderr that it waits.
_NOTICE_S = 2.0

#: Statuses of a finished run (kept on resume).
FINISHED = ("done", "diverged")

#: The first bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def check_store_file(path: str | Path) -> None:
    """Refuse a file that is not an existing results store, before SQLite opens (and so
    would initialise) it: an empty file, another format, a database without our table."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise ValueError(f"store {str(p)!r} cannot be read ({exc.strerror}); allowed: a "
                         "results file written by `analogsim sweep` or `analogsim compare`"
                         ) from None
    if head != SQLITE_HEADER:
        what = "an empty file" if not head else "not a SQLite database"
        raise ValueError(f"store {str(p)!r} is {what}; allowed: a results file written by "
                         "`analogsim sweep` or `analogsim compare`")
    try:
        conn = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True)
        try:
            found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                 "name = 'runs'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"store {str(p)!r} cannot be opened ({exc}); allowed: a results "
                         "file written by `analogsim sweep` or `analogsim compare`") from None
    if found is None:
        raise ValueError(f"store {str(p)!r} is a SQLite database without a 'runs' table; "
                         "allowed: a results file written by `analogsim sweep` or "
                         "`analogsim compare`")


class ResultsStore:
    """One SQLite file holding the results of one or more sweeps.

    Parameters
    ----------
    path : str or os.PathLike
        Database file; created with its parent directories if missing.  ``":memory:"`` works
        for throw-away stores.
    timeout : float
        Seconds a writer waits for another process's transaction (``busy_timeout``).

    Examples
    --------
    >>> with ResultsStore(":memory:") as store:
    ...     store.mark_running("abc", sweep="demo", point={"seed": 0})
    ...     store.status("abc")
    'running'
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
            raise ValueError(f"timeout = {timeout!r} is invalid; allowed: seconds >= 0")
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a transaction takes the
        # write lock up front (and waits for it) instead of failing when upgrading a read lock.
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._setup(timeout)
        except sqlite3.DatabaseError as exc:
            if hasattr(self, "_conn"):
                self._conn.close()
            if "locked" in str(exc):  # still busy after the timeout: not the file's fault
                raise
            raise ValueError(f"results store {self.path!r} cannot be opened ({exc}); allowed: "
                             "a SQLite results file, or a new file name") from None

    def _setup(self, timeout: float) -> None:
        self._timeout = timeout
        # Short waits inside SQLite, the long wait in _transaction: it can say what it waits for.
        self._conn.execute(f"PRAGMA busy_timeout = {int(min(timeout, _NOTICE_S) * 1000)}")
        self._enable_wal(timeout)
        self._conn.execute("PRAGMA synchronous = NORMAL")
        with self._transaction() as cur:
            self._migrate(cur)
            # Statement by statement: executescript() would COMMIT our transaction early.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @staticmethod
    def _migrate(cur: sqlite3.Cursor) -> None:
        """Upgrade a file written by an older schema, inside the setup transaction.

        1 → 2: the status CHECK gains ``'diverged'``; SQLite cannot alter a CHECK, so the
        table is copied into a new one (every row kept) and renamed. 2 → 3: ``members``,
        filled with each row's last sweep.
        """
        version = cur.execute("PRAGMA user_version").fetchone()[0]
        exists = cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                             "name = 'runs'").fetchone()
        if not exists or version >= SCHEMA_VERSION:
            return
        if version < 2:
            cur.execute(_TABLE.format(name="runs_v2"))
            cur.execute(f"INSERT INTO runs_v2 ({', '.join(_COLUMNS)}) SELECT "
                        f"{', '.join(_COLUMNS)} FROM runs")
            cur.execute("DROP TABLE runs")
            cur.execute("ALTER TABLE runs_v2 RENAME TO runs")
        if 2 <= version < 4:  # (a version-1 table was rebuilt with the columns above)
            cur.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
            cur.execute("ALTER TABLE runs ADD COLUMN lease_until REAL")
        if version < 3:  # each row belonged to the sweep that last ran it
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute("INSERT OR IGNORE INTO members (sweep, point_id, point_json) "
                        "SELECT sweep, point_id, point_json FROM runs")

    # ----------------------------------------------------------------------- plumbing

    def _enable_wal(self, timeout: float) -> None:
        """Switch to WAL journaling, retrying while another process holds the file.

        SQLite does not call the busy handler for a journal-mode change, so two processes
        opening a new file at once can get "database is locked" here: retry until ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction: committed on success, rolled back on any error."""
        cur = self._conn.cursor()
        self._begin(cur)
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def _begin(self, cur: sqlite3.Cursor) -> None:
        """``BEGIN IMMEDIATE``; while another process holds the write lock, say so once on
        stderr and keep waiting up to ``timeout`` seconds, then raise a clear error."""
        deadline = time.monotonic() + getattr(self, "_timeout", 60.0)
        told = False
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if not told:
                    print(f"waiting for results store {self.path!r}: another process holds "
                          "its write lock", file=sys.stderr, flush=True)
                    told = True
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError(
                        f"results store {self.path!r} is locked by another process (a sweep "
                        f"writing it, or a program holding a transaction open) for more than "
                        f"{getattr(self, '_timeout', 60.0):g} s; allowed: wait for it or stop "
                        "it, then run again") from None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultsStore({self.path!r})"

    # ----------------------------------------------------------------------- writes

    def mark_running(self, point_id: str, *, sweep: str, point: dict[str, Any],
                     started_at: str | None = None) -> None:
        """Record that ``point_id`` was dispatched, replacing any earlier row for it.

        Parameters
        ----------
        point_id : str
            The point's id.
        sweep : str
            Name of the sweep running it.
        point : dict
            The point itself.
        started_at : str, optional
            ISO time; defaults to now.
        """
        self.mark_running_many([(point_id, point)], sweep=sweep, started_at=started_at)

    def mark_running_many(self, items: Iterable[tuple[str, dict[str, Any]]], *, sweep: str,
                          started_at: str | None = None) -> None:
        """Mark several ``(point_id, point)`` pairs running in one transaction."""
        started_at = started_at or utc_now()
        rows = []
        for point_id, point in items:
            _check_point_id(point_id)
            rows.append((point_id, sweep, to_json(point), _seed_of(point), started_at))
        # Upsert rather than INSERT OR REPLACE: it clears the old results but keeps the rowid,
        # so rows() keeps listing points in their first-dispatch order.
        with self._transaction() as cur:
            cur.executemany(_ADD_MEMBER, [(sweep, r[0], r[2]) for r in rows])
            cur.executemany(
                "INSERT INTO runs (point_id, sweep, status, point_json, seed, started_at) "
                "VALUES (?, ?, 'running', ?, ?, ?) ON CONFLICT (point_id) DO UPDATE SET "
                "sweep = excluded.sweep, status = 'running', point_json = excluded.point_json, "
                "config_json = NULL, metrics_json = NULL, ledger_json = NULL, "
                "summary_json = NULL, extra_json = NULL, error = NULL, wall_time = NULL, "
                "versions_json = NULL, seed = excluded.seed, started_at = excluded.started_at, "
                "finished_at = NULL", rows)

    def record_done(self, point_id: str, *, sweep: str, point: dict[str, Any],
                    config: Any, metrics: Any, ledger: Any, summary: Any,
                    extra: dict[str, Any] | None = None, wall_time: float | None = None,
                    versions: dict[str, Any] | None = None, started_at: str | None = None,
                    finished_at: str | None = None, status: str = "done",
                    keep_finished: bool = False) -> None:
        """Store a finished run (one transaction), replacing the point's row.

        Parameters
        ----------
        point_id, sweep, point
            As for :meth:`mark_running`.
        config, metrics, ledger, summary : JSON-able
            The run function's result parts.
        extra : dict, optional
            Any further keys the run function returned.
        wall_time : float, optional
            Seconds spent in the run function.
        versions : dict, optional
            Software versions of the process that ran it.
        started_at, finished_at : str, optional
            ISO times; ``finished_at`` defaults to now, ``started_at`` keeps the dispatch time.
        status : {"done", "diverged"}
            ``"diverged"``: the run finished but its training diverged (its summary says how);
            kept like a done row (not re-run), reported apart.
        keep_finished : bool
            Leave a row that is already finished (another driver's result) as it is.
        """
        _check_point_id(point_id)
        keep = 1 if keep_finished else 0
        if status not in FINISHED:
            raise ValueError(f"status = {status!r} is invalid; allowed: " + ", ".join(FINISHED))
        values = (point_id, sweep, status, to_json(point), to_json(config), to_json(metrics),
                  to_json(ledger), to_json(summary), to_json(extra or {}), wall_time,
                  to_json(versions or {}), _seed_of(point), started_at,
                  finished_at or utc_now())
        with self._transaction() as cur:
            cur.execute(_ADD_MEMBER, (sweep, point_id, to_json(point)))
            cur.execute(
                "INSERT INTO runs (point_id, sweep, status, point_json, config_json, "
                "metrics_json, ledger_json, summary_json, extra_json, wall_time, versions_json, "
                "seed, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?) ON CONFLICT (point_id) DO UPDATE SET sweep = excluded.sweep, "
                "status = excluded.status, point_json = excluded.point_json, "
                "config_json = excluded.config_json, metrics_json = excluded.metrics_json, "
                "ledger_json = excluded.ledger_json, summary_json = excluded.summary_json, "
                "extra_json = excluded.extra_json, error = NULL, "
                "wall_time = excluded.wall_time, versions_json = excluded.versions_json, "
                "seed = excluded.seed, "
                "started_at = COALESCE(excluded.started_at, runs.started_at), "
                "finished_at = excluded.finished_at, owner = NULL, lease_until = NULL "
                "WHERE runs.status NOT IN ('done', 'diverged') OR ? = 0", (*values, keep))

    def record_failed(self, point_id: str, error_text: str, *, sweep: str | None = None,
                      point: dict[str, Any] | None = None, wall_time: float | None = None,
                      versions: dict[str, Any] | None = None, started_at: str | None = None,
                      finished_at: str | None = None) -> None:
        """Mark ``point_id`` failed with ``error_text`` (usually a traceback).

        Parameters
        ----------
        point_id : str
            The point's id.
        error_text : str
            What went wrong.
        sweep, point : optional
            Needed only when the point has no row yet (it was never marked running).
        wall_time, versions, started_at, finished_at : optional
            As for :meth:`record_done`.

        Raises
        ------
        ValueError
            If the point has no row and ``sweep`` or ``point`` is missing.
        """
        _check_point_id(point_id)
        finished_at = finished_at or utc_now()
        versions_json = to_json(versions) if versions is not None else None
        with self._transaction() as cur:
            cur.execute(
                "UPDATE runs SET status = 'failed', error = ?, config_json = NULL, "
                "metrics_json = NULL, ledger_json = NULL, summary_json = NULL, "
                "extra_json = NULL, wall_time = ?, versions_json = ?, "
                "sweep = COALESCE(?, sweep), started_at = COALESCE(?, started_at), "
                "finished_at = ?, owner = NULL, lease_until = NULL WHERE point_id = ? AND "
                "status NOT IN ('done', 'diverged')",
                (error_text, wall_time, versions_json, sweep, started_at, finished_at, point_id))
            updated = cur.rowcount
            if sweep is not None and point is not None:
                cur.execute(_ADD_MEMBER, (sweep, point_id, to_json(point)))
            exists = cur.execute("SELECT 1 FROM runs WHERE point_id = ?", (point_id,)).fetchone()
            if updated or exists:  # a finished row (another driver's result) stays as it is
                return
            if sweep is None or point is None:
                raise ValueError(f"point_id = {point_id!r} has no row yet; record_failed needs "
                                 "sweep= and point= to create it")
            cur.execute(
                "INSERT INTO runs (point_id, sweep, status, point_json, error, wall_time, "
                "versions_json, seed, started_at, finished_at) "
                "VALUES (?, ?, 'failed', ?, ?, ?, ?, ?, ?, ?)",
                (point_id, sweep, to_json(point), error_text, wall_time, versions_json,
                 _seed_of(point), started_at, finished_at))

    # ----------------------------------------------------------------------- reads

    def status(self, point_id: str) -> str | None:
        """Status of ``point_id`` (``'running'``, ``'done'``, ``'failed'``), ``None`` if absent."""
        row = self._conn.execute("SELECT status FROM runs WHERE point_id = ?",
                                 (point_id,)).fetchone()
        return row[0] if row else None

    def statuses(self, sweep: str | None = None) -> dict[str, str]:
        """``{point_id: status}`` of every row, or of one sweep's rows."""
        sql, args = self._where("SELECT r.point_id, r.status", sweep)
        return dict(self._conn.execute(sql, args).fetchall())

    def done_ids(self, sweep: str | None = None) -> set[str]:
        """Ids of the points whose status is ``'done'`` (of one sweep if given)."""
        return {pid for pid, st in self.statuses(sweep).items() if st == "done"}

    def rows(self, sweep: str | None = None) -> list[dict[str, Any]]:
        """All rows (of one sweep if given) in first-dispatch order, JSON columns decoded.

        Returns
        -------
        list of dict
            One dict per row.  JSON columns lose their ``_json`` suffix and are decoded
            (``row["summary"]["test_accuracy"]``); a missing value is ``None``.
        """
        sql, args = self._where(f"SELECT {_JOIN_COLUMNS if sweep else ', '.join(_COLUMNS)}",
                                sweep)
        out = []
        for values in self._conn.execute(sql + " ORDER BY r.rowid", args):
            row: dict[str, Any] = {}
            for name, value in zip(_COLUMNS, values, strict=True):
                if name.endswith("_json"):
                    row[name[:-5]] = None if value is None else json.loads(value)
                else:
                    row[name] = value
            out.append(row)
        return out

    def integrity_ok(self) -> bool:
        """``True`` if SQLite's ``PRAGMA integrity_check`` finds nothing wrong."""
        try:
            result = self._conn.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.DatabaseError:  # a badly damaged file fails the check by raising
            return False
        return result == [("ok",)]

    @staticmethod
    def _where(select: str, sweep: str | None) -> tuple[str, tuple[Any, ...]]:
        """``select`` (columns of ``runs r``) from every row, or from one sweep's members."""
        if sweep is None:
            return select.replace("r.", "") + " FROM runs r", ()
        return (select + " FROM runs r JOIN members m ON m.point_id = r.point_id "
                "WHERE m.sweep = ?", (sweep,))

    def claim(self, items: Iterable[tuple[str, dict[str, Any]]], *, sweep: str, owner: str,
              lease_s: float, retry_failed: bool = True) -> list[tuple[str, dict[str, Any]]]:
        """Atomically take the points no live driver holds; return those taken.

        A point is taken when it has no row, or its row is ``'running'`` under an expired
        lease or this ``owner``'s, or ``'failed'`` (with ``retry_failed``); finished rows
        and other drivers' live leases are left alone. Taken rows become ``'running'`` with
        ``owner`` and ``lease_until = now + lease_s`` (renew with :meth:`renew`).
        """
        items = list(items)
        now = time.time()
        taken = []
        with self._transaction() as cur:
            for point_id, point in items:
                _check_point_id(point_id)
                row = cur.execute("SELECT status, owner, lease_until FROM runs WHERE "
                                  "point_id = ?", (point_id,)).fetchone()
                if row is not None:
                    status, holder, until = row
                    free = ((status == "running" and (holder in (None, owner) or
                                                      (until or 0.0) < now or
                                                      not owner_alive(holder)))
                            or (status == "failed" and retry_failed))
                    if not free:
                        continue
                taken.append((point_id, point))
            started = utc_now()
            rows = [(pid, sweep, to_json(p), _seed_of(p), started, owner, now + lease_s)
                    for pid, p in taken]
            cur.executemany(_ADD_MEMBER, [(sweep, r[0], r[2]) for r in rows])
            cur.executemany(
                "INSERT INTO runs (point_id, sweep, status, point_json, seed, started_at, owner, "
                "lease_until) VALUES (?, ?, 'running', ?, ?, ?, ?, ?) ON CONFLICT (point_id) "
                "DO UPDATE SET sweep = excluded.sweep, status = 'running', "
                "point_json = excluded.point_json, config_json = NULL, metrics_json = NULL, "
                "ledger_json = NULL, summary_json = NULL, extra_json = NULL, error = NULL, "
                "wall_time = NULL, versions_json = NULL, seed = excluded.seed, "
                "started_at = excluded.started_at, finished_at = NULL, owner = excluded.owner, "
                "lease_until = excluded.lease_until", rows)
        return taken

    def renew(self, owner: str, lease_s: float) -> int:
        """Extend the leases of ``owner``'s running points; returns how many."""
        with self._transaction() as cur:
            cur.execute("UPDATE runs SET lease_until = ? WHERE owner = ? AND status = 'running'",
                        (time.time() + lease_s, owner))
            return cur.rowcount

    def held_by_others(self, ids: Iterable[str], owner: str) -> int:
        """How many of ``ids`` are running under another driver's live lease."""
        now = time.time()
        ids = list(ids)
        n = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            holders = self._conn.execute(
                f"SELECT owner FROM runs WHERE point_id IN ({','.join('?' * len(chunk))}) "
                "AND status = 'running' AND owner IS NOT NULL AND owner != ? AND "
                "lease_until >= ?", (*chunk, owner, now)).fetchall()
            n += sum(owner_alive(h) for (h,) in holders)
        return n

    def sweeps(self) -> list[str]:
        """Names of the sweeps that list at least one point, in order of first listing."""
        return [r[0] for r in self._conn.execute(
            "SELECT sweep FROM members GROUP BY sweep ORDER BY MIN(rowid)")]

    def set_members(self, sweep: str, items: Iterable[tuple[str, dict[str, Any]]]
                    ) -> list[str]:
        """Make ``items`` (``(point_id, point)``) exactly the points of ``sweep``; return the
        ids that belonged to it before and no longer do (their rows stay in the store)."""
        items = list(items)
        for point_id, _ in items:
            _check_point_id(point_id)
        with self._transaction() as cur:
            before = {r[0] for r in cur.execute("SELECT point_id FROM members WHERE sweep = ?",
                                                (sweep,))}
            keep = {pid for pid, _ in items}
            gone = sorted(before - keep)
            cur.executemany("DELETE FROM members WHERE sweep = ? AND point_id = ?",
                            [(sweep, pid) for pid in gone])
            cur.executemany(_ADD_MEMBER, [(sweep, pid, to_json(p)) for pid, p in items])
        return gone
