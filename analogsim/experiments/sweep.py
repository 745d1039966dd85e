"""Sweeps: a TOML spec expands to points; each point runs once and lands in a results store.

The sweep engine knows nothing about what a run computes.  A *run function* named by an import
path (``"package.module:function"``, so it pickles to any worker) is called as ``fn(point)``
with a flat ``{key: value}`` dict and returns a dict with keys ``config``, ``metrics``,
``ledger`` and ``summary`` (any further keys are stored in the ``extra`` column).  The driver
process writes each result to a :class:`~analogsim.experiments.store.ResultsStore` as soon as
it arrives; workers only compute.

Spec
----
The TOML form, its validation and its expansion into points live in
:mod:`analogsim.experiments.spec` (re-exported here).

Resume
------
Re-running a sweep on the same store skips points whose row is ``'done'`` or ``'diverged'`` (a
run whose summary says ``"diverged": true``: it finished, and its training diverged);
``'running'`` rows (the sweep was killed while they ran) and ``'failed'`` ones (unless
``retry_failed=False``) are run again and their rows replaced.  A point whose run function
raises is recorded ``'failed'`` with the traceback and the sweep goes on.

Executors
---------
``"serial"``
    In the driver process, one point after another: for debugging and tests.
``"local"``
    A ``ProcessPoolExecutor`` with the ``spawn`` start method (numba's threading layers are not
    fork-safe), ``max_workers`` processes (default: the number of CPUs; never more than the
    points to run).  Workers get ``NUMBA_NUM_THREADS=OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=
    MKL_NUM_THREADS=1`` (:data:`WORKER_ENV`) in their environment from birth, before numpy or
    numba load, so N workers on N cores do not oversubscribe.  At most ``max_workers`` points
    are in flight, so ``'running'`` rows are the ones actually running.  If a worker dies
    (segfault, out-of-memory kill) the points in flight are recorded failed and a fresh pool
    carries on.  As with any spawn-based pool, a script calling :func:`run_sweep` with this
    executor or ``"dask-local"`` needs the ``if __name__ == "__main__":`` guard.
``"dask-local"``
    A ``distributed.LocalCluster`` of ``max_workers`` single-threaded worker processes
    (default as above) with the same environment, mainly to test the dask path on a laptop.
any other string
    The address of a running dask scheduler (``"tcp://10.0.0.5:8786"``): the command line's
    ``--dask ADDRESS``.  Workers there are configured by whoever started them (see below).
    With either dask executor every point to run is submitted, and marked ``'running'``, at
    once: the scheduler queues and balances them.

numba's on-disk cache is shared by all workers of a machine and safe for concurrent readers,
but when it is cold every worker compiles the kernels itself on its first point.  Pass
``warmup_fn="package.module:function"`` (called with no arguments, once, in the driver, before
any worker starts) to compile them first; on a cluster that helps only when the cache
directory (``NUMBA_CACHE_DIR``) is on a filesystem the workers share.

Running on a SLURM cluster
--------------------------
With ``pip install analogsim[dask] dask-jobqueue``, start the cluster and the sweep in one
Python process that lives for the whole sweep (a login-node ``tmux`` session, say)::

    from dask_jobqueue import SLURMCluster
    from analogsim.experiments.sweep import run_sweep

    cluster = SLURMCluster(
        cores=1, processes=1, memory="4GB", walltime="04:00:00",
        job_extra_directives=["--partition=cpu", "--account=myproject"],
        job_script_prologue=[
            "export NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
            " MKL_NUM_THREADS=1",
            "export NUMBA_CACHE_DIR=$HOME/.cache/analogsim-numba",  # shared, warm once
        ],
    )
    cluster.scale(jobs=32)          # 32 SLURM jobs of one single-threaded worker each
    run_sweep("sweep.toml", "results.sqlite", run_fn=RUN_FN,
              executor=cluster.scheduler_address)

or keep ``cluster`` alive in one session and pass ``cluster.scheduler_address`` to the command
line's ``--dask``.  Jobs may start late or be pre-empted: dask reschedules their points, and
the SQLite file (written only by the driver) stays on the login node's filesystem.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import importlib
import importlib.metadata
import json
import multiprocessing
import os
import platform
import re
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from analogsim.experiments import select as _select
from analogsim.experiments.spec import (
    DISTRIBUTIONS,
    TOP_LEVEL,
    SweepSpec,
    _check_int,
    expand,
    load_spec,
    loads_spec,
    point_id,
    spec_from_dict,
)
from analogsim.experiments.store import ResultsStore, owner_name, to_json, utc_now

__all__ = [
    "WORKER_ENV",
    "TOP_LEVEL",
    "DISTRIBUTIONS",
    "SweepSpec",
    "SweepReport",
    "load_spec",
    "loads_spec",
    "spec_from_dict",
    "expand",
    "point_id",
    "resolve_run_fn",
    "run_sweep",
]

#: Environment of every worker process: one thread each, so workers x threads <= cores.
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

_RESULT_KEYS = ("config", "metrics", "ledger", "summary")
_NAMED_EXECUTORS = ("serial", "local", "dask-local")
_ADDRESS = re.compile(r"^([a-z]+://\S+|[\w.\-]+:\d+)$")

Point = dict[str, Any]
Envelope = dict[str, Any]
#: Claims points just before they start; returns the ones this driver may run.
Dispatch = Callable[[list[tuple[str, Point]]], list[tuple[str, Point]]]

# --------------------------------------------------------------------------- worker side


def resolve_run_fn(path: str, param: str = "run_fn") -> Callable[..., Any]:
    """Import the callable named ``"package.module:function"`` (``function`` may be dotted).

    Raises
    ------
    ValueError
        If ``path`` is malformed or does not name an importable callable.
    """
    if not isinstance(path, str) or path.count(":") != 1 or not all(path.split(":")):
        raise ValueError(f"{param} = {path!r} is invalid; allowed: 'package.module:function'")
    module_name, attr = path.split(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{param} = {path!r} cannot be imported ({exc}); allowed: an "
                         "importable 'package.module:function'") from None
    if not callable(obj):
        raise ValueError(f"{param} = {path!r} is not callable; allowed: a function")
    return obj


@functools.cache
def software_versions() -> dict[str, str | None]:
    """Versions of python, numpy, numba and analogsim in this process (numba not imported)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("numpy", "numba", "analogsim"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def _init_worker(env: dict[str, str], driver: int | None = None) -> None:
    """Pool initializer: re-assert the worker environment (the parent set it before spawn).

    Also exit the worker when the driver dies: a spawned worker holds both ends of its task
    pipe, so after a SIGKILL of the driver it would otherwise wait for work forever.
    ``driver`` is the driver's pid, taken in the driver: a worker whose driver died while it
    was still starting (importing for a second or more) is already re-parented when this
    runs, so comparing with its own ``getppid()`` then would watch the wrong process.
    """
    os.environ.update(env)
    driver = os.getppid() if driver is None else driver
    if os.getppid() != driver:
        os._exit(70)
    _exit_with_parent(driver)


def _exit_with_parent(ppid: int, period: float = 0.5) -> None:
    def watch() -> None:
        while os.getppid() == ppid:  # re-parented (to init or a subreaper) once it died
            time.sleep(period)
        os._exit(70)

    threading.Thread(target=watch, name="analogsim-parent-watch", daemon=True).start()


def _normalise_result(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"run function returned a {type(raw).__name__}; allowed: a dict with "
                         f"keys {', '.join(_RESULT_KEYS)}")
    missing = [key for key in _RESULT_KEYS if key not in raw]
    if missing:
        raise ValueError(f"run function result lacks keys {missing}; it has {sorted(raw)}")
    # A JSON round trip here makes a non-serialisable result fail as *this point's* error
    # (with its traceback) and gives every executor the same plain values to store.
    plain = json.loads(to_json(raw))
    extra = {k: v for k, v in plain.items() if k not in _RESULT_KEYS}
    return {**{k: plain[k] for k in _RESULT_KEYS}, "extra": extra}


def _execute_point(run_fn: str, pid: str, point: Point) -> Envelope:
    """Run one point (in a worker) and wrap the outcome; never raises an ``Exception``."""
    started_at, start = utc_now(), time.perf_counter()
    try:
        # A copy: a run function that edits its point must not change what gets stored.
        result, error = _normalise_result(resolve_run_fn(run_fn)(copy.deepcopy(point))), None
    except Exception:
        result, error = None, traceback.format_exc()
    return {"point_id": pid, "result": result, "error": error,
            "wall_time": time.perf_counter() - start, "versions": software_versions(),
            "started_at": started_at, "finished_at": utc_now()}


def _lost_envelope(pid: str, error: str) -> Envelope:
    """Outcome of a point whose worker never reported back."""
    return {"point_id": pid, "result": None, "error": error, "wall_time": None,
            "versions": None, "started_at": None, "finished_at": utc_now()}


# --------------------------------------------------------------------------- executors


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """Set ``env`` in ``os.environ`` for the block, then restore the previous values.

    Spawned children copy the parent's environment when they start, so this is what puts the
    variables in place before a worker imports numpy or numba.
    """
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _iter_serial(run_fn: str, todo: list[tuple[str, Point]], dispatch: Dispatch
                 ) -> Iterator[tuple[str, Point, Envelope]]:
    for pid, point in todo:
        if dispatch([(pid, point)]):
            yield pid, point, _execute_point(run_fn, pid, point)


def _collect(fut: Future, pid: str) -> tuple[Envelope, bool]:
    """Envelope of a finished future, and whether its worker process died."""
    try:
        return fut.result(), False
    except BrokenProcessPool:
        return _lost_envelope(pid, "worker process died abruptly while this point or another "
                                   "one in flight ran (crash or out-of-memory kill?)\n"
                                   + traceback.format_exc()), True
    except Exception:
        return _lost_envelope(pid, traceback.format_exc()), False


def _drain_pool(pool: ProcessPoolExecutor, run_fn: str, queue: deque[tuple[str, Point]],
                width: int, dispatch: Dispatch) -> Iterator[tuple[str, Point, Envelope]]:
    """Feed ``queue`` to ``pool`` ``width`` points at a time until done or the pool breaks."""
    inflight: dict[Future, tuple[str, Point]] = {}
    broken = False
    while inflight or (queue and not broken):
        while queue and not broken and len(inflight) < width:
            pid, point = queue[0]
            if not dispatch([(pid, point)]):  # another driver holds it
                queue.popleft()
                continue
            try:
                fut = pool.submit(_execute_point, run_fn, pid, point)
            except BrokenProcessPool:
                broken = True  # claimed but not run: its lease is ours, a new pool runs it
                break
            queue.popleft()
            inflight[fut] = (pid, point)
        if not inflight:
            continue
        finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
        for fut in finished:
            pid, point = inflight.pop(fut)
            envelope, died = _collect(fut, pid)
            broken = broken or died
            yield pid, point, envelope


def _iter_local(run_fn: str, todo: list[tuple[str, Point]], workers: int, dispatch: Dispatch
                ) -> Iterator[tuple[str, Point, Envelope]]:
    queue = deque(todo)
    context = multiprocessing.get_context("spawn")
    with _environ(WORKER_ENV):
        while queue:  # a new pool after a worker died; every round consumes >= 1 point
            pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                       initargs=(WORKER_ENV, os.getpid()))
            try:
                yield from _drain_pool(pool, run_fn, queue, workers, dispatch)
            except BaseException:  # includes GeneratorExit and Ctrl-C: do not wait for runs
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError("the dask executors need dask.distributed: "
                          "pip install analogsim[dask]") from exc
    return distributed


def _dask_client(stack: contextlib.ExitStack, executor: str, workers: int) -> Any:
    """A client on a new local cluster (``"dask-local"``) or on the scheduler at ``executor``."""
    distributed = _import_distributed()
    if executor != "dask-local":
        return stack.enter_context(distributed.Client(executor))
    import dask

    # Nannies live in this process and spawn workers from its environment: set the variables
    # here (restored afterwards) and in the pre-spawn config, which a nanny re-applies before
    # it restarts a worker.
    stack.enter_context(_environ(WORKER_ENV))
    pre_spawn = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **WORKER_ENV}
    stack.enter_context(dask.config.set({"distributed.nanny.pre-spawn-environ": pre_spawn}))
    # The scheduler's HTTP server starts even without a dashboard, on port 8787 unless told
    # otherwise: a free loopback port avoids clashing with another cluster on this machine.
    cluster = stack.enter_context(distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True,
        dashboard_address="127.0.0.1:0", env=dict(WORKER_ENV)))
    return stack.enter_context(distributed.Client(cluster))


def _iter_dask(run_fn: str, todo: list[tuple[str, Point]], executor: str, workers: int,
               dispatch: Dispatch) -> Iterator[tuple[str, Point, Envelope]]:
    distributed = _import_distributed()
    with contextlib.ExitStack() as stack:
        client = _dask_client(stack, executor, workers)
        # The scheduler queues and balances the points itself, so all are submitted at once
        # (and marked running in one transaction).  The random suffix keeps keys unique if
        # two sweeps share a scheduler.
        token = uuid.uuid4().hex[:8]
        todo = dispatch(todo)
        futures = {client.submit(_execute_point, run_fn, pid, point, pure=False,
                                 key=f"analogsim-{pid}-{token}"): (pid, point)
                   for pid, point in todo}
        for fut in distributed.as_completed(futures):
            pid, point = futures.pop(fut)
            envelope, _ = _collect(fut, pid)
            fut.release()  # free the result on the cluster
            yield pid, point, envelope


# --------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class SweepReport:
    """What a :func:`run_sweep` call did.

    Attributes
    ----------
    name, store_path : str
        Sweep name and results file.
    total : int
        Points in the sweep.
    skipped : int
        Points not run: already done, or failed with ``retry_failed=False``.
    done, failed : int
        Points run in this call that succeeded / failed.
    wall_time : float
        Seconds for the whole call.
    failed_ids : tuple of str
        Ids of the points that failed in this call.
    """

    name: str
    store_path: str
    total: int
    skipped: int
    done: int
    failed: int
    wall_time: float
    failed_ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        return (f"sweep {self.name!r}: {self.total} points, {self.skipped} skipped, "
                f"{self.done} done, {self.failed} failed in {self.wall_time:.1f} s "
                f"-> {self.store_path}")


def _check_executor(executor: Any) -> None:
    if not isinstance(executor, str) or not (executor in _NAMED_EXECUTORS
                                             or _ADDRESS.match(executor)):
        raise ValueError(f"executor = {executor!r} is invalid; allowed: "
                         + ", ".join(repr(e) for e in _NAMED_EXECUTORS)
                         + " or a dask scheduler address such as 'tcp://host:8786'")


def _plan(points: list[tuple[str, Point]], statuses: dict[str, str], retry_failed: bool
          ) -> list[tuple[str, Point]]:
    keep = {"done", "diverged"} if retry_failed else {"done", "diverged", "failed"}
    return [(pid, point) for pid, point in points if statuses.get(pid) not in keep]


def _record(store: ResultsStore, sweep: str, pid: str, point: Point, env: Envelope) -> bool:
    """Write one outcome (one transaction); ``True`` if the run succeeded."""
    times = {"wall_time": env["wall_time"], "versions": env["versions"],
             "started_at": env["started_at"], "finished_at": env["finished_at"]}
    if env["result"] is None:
        store.record_failed(pid, env["error"], sweep=sweep, point=point, **times)
        return False
    summary = env["result"]["summary"]
    diverged = isinstance(summary, dict) and summary.get("diverged") is True
    store.record_done(pid, sweep=sweep, point=point, **env["result"], **times,
                      status="diverged" if diverged else "done", keep_finished=True)
    return True


def _record_all(store: ResultsStore, sweep: str,
                outcomes: Iterator[tuple[str, Point, Envelope]], bar: tqdm
                ) -> tuple[int, list[str]]:
    """Write outcomes as they arrive; the number done and the ids that failed."""
    done, failed_ids = 0, []
    for pid, point, envelope in outcomes:
        if _record(store, sweep, pid, point, envelope):
            done += 1
        else:
            failed_ids.append(pid)
            bar.set_postfix(failed=len(failed_ids))
        bar.update(1)
    return done, failed_ids


def _iterate(run_fn: str, todo: list[tuple[str, Point]], executor: str, workers: int,
             dispatch: Dispatch) -> Iterator[tuple[str, Point, Envelope]]:
    if executor == "serial":
        return _iter_serial(run_fn, todo, dispatch)
    if executor == "local":
        return _iter_local(run_fn, todo, workers, dispatch)
    return _iter_dask(run_fn, todo, executor, workers, dispatch)


def run_sweep(spec: SweepSpec | str | os.PathLike[str], store_path: str | os.PathLike[str],
              run_fn: str, executor: str = "local", max_workers: int | None = None,
              progress: bool = True, *, retry_failed: bool = True,
              warmup_fn: str | None = None, identity_fn: str | None = None) -> SweepReport:
    """Run every point of ``spec`` not yet done, writing each result as it finishes.

    Parameters
    ----------
    spec : SweepSpec or path
        The sweep, or its TOML file.
    store_path : path
        SQLite results file (created if missing; shared by sweeps).
    run_fn : str
        ``"package.module:function"``, called as ``fn(point)`` in a worker.
    executor : str
        ``"local"``, ``"serial"``, ``"dask-local"`` or a dask scheduler address.
    max_workers : int, optional
        Worker processes for ``"local"`` and ``"dask-local"`` (default: the CPU count), capped
        at the number of points to run.
    progress : bool
        Show a tqdm progress bar on stderr.
    retry_failed : bool
        Run points that failed before again (default) or keep their failure.
    warmup_fn : str, optional
        ``"package.module:function"`` called with no arguments in the driver before workers
        start, e.g. to fill numba's cache (not called by the serial executor).
    identity_fn : str, optional
        ``"package.module:function"`` mapping a point to what determines its result (for
        :func:`~analogsim.experiments.points.run_point`: the resolved hardware values, model,
        training, rule and optimizer options); a point's id is the hash of that, so two
        spellings of one run share a row, and editing a file a point names makes a new
        point. Default: the hash of the point as written.

    Returns
    -------
    SweepReport
    """
    start = time.perf_counter()
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    _check_executor(executor)
    if max_workers is not None:
        _check_int("max_workers", max_workers, 1)
    resolve_run_fn(run_fn)  # fail here, not once per point in the workers
    warmup = resolve_run_fn(warmup_fn, "warmup_fn") if warmup_fn is not None else None
    ident = point_id
    if identity_fn is not None:
        content = resolve_run_fn(identity_fn, "identity_fn")

        def ident(point: Mapping[str, Any]) -> str:
            # to_json: resolved configs hold infinities (an ideal ADC's out_bound).
            text = to_json(content(dict(point)))
            return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    phase = functools.partial(_run_phase, run_fn=run_fn, executor=executor, ident=ident,
                              max_workers=max_workers, progress=progress,
                              retry_failed=retry_failed, warmup=warmup)
    points = expand(spec)
    totals = [0, 0, 0]  # points, skipped, done
    failed: list[str] = []
    unresolved: list[Point] = []
    tuning = spec.tuning()
    with ResultsStore(store_path) as store:
        if tuning is not None:
            section, table, cands = tuning
            points, unresolved = _tune(store, spec.name + _select.SUFFIX, points, table,
                                       cands, ident, lambda n, t: phase(store, n, t),
                                       lambda o: _add(totals, failed, o))
            warmup = None
        _add(totals, failed, phase(store, spec.name, points))
        for point in unresolved:  # no trial finished: nothing to choose from
            pid = ident(point)
            store.record_failed(pid, f"{section}: none of the {len(cands)} trials of this "
                                "setting finished", sweep=spec.name, point=point)
            totals[0] += 1
            failed.append(pid)
    return SweepReport(name=spec.name, store_path=str(store_path), total=totals[0],
                       skipped=totals[1], done=totals[2], failed=len(failed),
                       wall_time=time.perf_counter() - start, failed_ids=tuple(failed))


def _tune(store: ResultsStore, trial_name: str, points: list[Point], table: dict[str, Any],
          cands: list[Point], ident: Callable[[Mapping[str, Any]], str],
          run: Callable[[str, list[Point]], tuple[int, int, int, list[str]]],
          count: Callable[[tuple[int, int, int, list[str]]], None]
          ) -> tuple[list[Point], list[Point]]:
    """Run the trials rung by rung (one rung without halving); ``(finals, unresolved)``."""
    alive = [list(cands) for _ in points]
    stages = _select.rungs(table)
    listed: dict[str, Point] = {}  # every rung's trials stay members of the trial sweep
    for r, stage in enumerate(stages):
        before = len(listed)
        for p, c in zip(points, alive, strict=True):
            listed.update((ident(t), t) for t in _select.trial_points([p], stage, c, ident))
        n, skipped, done, failed = run(trial_name, list(listed.values()))
        count((n - before, skipped - before, done, failed))  # earlier rungs: counted once
        summaries = {row["point_id"]: row["summary"] for row in store.rows(trial_name)
                     if row["status"] in ("done", "diverged")}
        if r < len(stages) - 1:
            alive = [_select.survivors(p, stage, c, summaries, ident)
                     for p, c in zip(points, alive, strict=True)]
    finals, unresolved = [], []
    for p, c in zip(points, alive, strict=True):
        done_, missing = _select.final_points([p], stages[-1], c, summaries, ident)
        finals += done_
        unresolved += missing
    return finals, unresolved


def _add(totals: list[int], failed: list[str], outcome: tuple[int, int, int, list[str]]
         ) -> None:
    for i in range(3):
        totals[i] += outcome[i]
    failed.extend(outcome[3])


def _run_phase(store: ResultsStore, name: str, points: list[Point], *, run_fn: str,
               executor: str, max_workers: int | None, progress: bool, retry_failed: bool,
               warmup: Callable[[], Any] | None, ident: Callable[[Mapping[str, Any]], str]
               ) -> tuple[int, int, int, list[str]]:
    """Run the points of one sweep name not yet done: ``(points, skipped, done, failed ids)``.

    The sweep's membership is set first: a point another sweep already ran is not run again
    but is listed in this one's report; points of an earlier version of the spec that are
    no longer in it leave the sweep (their rows stay) and are counted on stderr.
    """
    items = list({ident(p): p for p in points}.items())  # one row per distinct run
    gone = store.set_members(name, items)
    if gone and progress:
        print(f"{name}: {len(gone)} point(s) of an earlier version of this sweep are no longer "
              "in it (kept in the store, left out of its report)", file=sys.stderr)
    todo = _plan(items, store.statuses(), retry_failed)
    workers = max(1, min(max_workers or os.cpu_count() or 1, len(todo)))
    if todo and warmup is not None and executor != "serial":
        warmup()
    owner = owner_name()

    def claim(batch: list[tuple[str, Point]]) -> list[tuple[str, Point]]:
        return store.claim(batch, sweep=name, owner=owner, lease_s=LEASE_S,
                           retry_failed=retry_failed)

    with tqdm(total=len(items), initial=len(items) - len(todo), desc=name,
              unit="run", file=sys.stderr, disable=not progress) as bar, \
            _heartbeat(store.path, owner):
        # closing(): on any error the pool or cluster shuts down now, not at garbage
        # collection (the traceback would keep the generator alive).
        with contextlib.closing(_iterate(run_fn, todo, executor, workers, claim)) as outcomes:
            done, failed_ids = _record_all(store, name, outcomes, bar)
    others = store.held_by_others([pid for pid, _ in todo], owner)
    if others and progress:
        print(f"{name}: {others} point(s) are being run by another driver on this store "
              "(left to it; run the sweep again later to collect them)", file=sys.stderr)
    return len(items), len(items) - len(todo), done, failed_ids


#: Seconds a claim lasts without renewal: a dead driver's points are free again after this.
LEASE_S = 120.0


@contextlib.contextmanager
def _heartbeat(path: str, owner: str, period: float | None = None) -> Iterator[None]:
    """Renew ``owner``'s leases every ``period`` seconds (default ``LEASE_S / 4``) from a
    daemon thread with its own connection, while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        try:
            st = ResultsStore(path)
        except Exception:  # the driver's own writes will report a broken store
            return
        with st:
            while not stop.wait(period or LEASE_S / 4):
                with contextlib.suppress(Exception):  # busy now: the next beat renews
                    st.renew(owner, LEASE_S)

    thread = threading.Thread(target=beat, name="analogsim-lease", daemon=True)
    if path != ":memory:":
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=5)
