"""Running a study's independent tasks: in this process, on local processes or on Dask.

Monte Carlo studies and simulation-based calibration hand each replication to
:func:`run_tasks`, which passes every finished task's records on as they come,
so that a study writes them to its file before the next one ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bayesmix.errors import EstimationError

Records = list[dict[str, Any]]


def _executor(
    fn: Callable[[Any], Records], workers: int, client: Any
) -> tuple[
    Callable[[Any], Future[Records]],
    Callable[[list[Any]], Iterable[Any]],
    Callable[[], None],
]:
    """``submit``, ``as_completed`` and a closer for the chosen backend."""
    if client is not None:
        try:
            from distributed import Client
            from distributed import as_completed as dask_completed
        except ImportError:
            raise EstimationError(
                "running on a Dask cluster needs the distributed package: "
                'pip install -e ".[dask]" (or pip install distributed).'
            ) from None
        owned = None
        if isinstance(client, str):
            try:
                client = owned = Client(client, timeout="20s")
            except (OSError, TimeoutError) as err:
                raise EstimationError(
                    f"cannot reach the Dask scheduler at {client!r} ({err}); check the "
                    "address (e.g. tcp://host:8786) and that the scheduler is running."
                ) from None
        return (
            lambda task: client.submit(fn, task, pure=False),
            lambda futures: dask_completed(futures),
            (lambda: owned.close()) if owned is not None else (lambda: None),
        )
    # spawn, not fork: forked children inherit JAX's and numba's threads
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    return (
        lambda task: pool.submit(fn, task),
        lambda futures: as_completed(futures),
        lambda: pool.shutdown(cancel_futures=True),
    )


def run_tasks(
    fn: Callable[[Any], Records],
    todo: Sequence[Any],
    keep: Callable[[Records], None],
    *,
    workers: int,
    client: Any,
    path: Path | None,
) -> None:
    """Run ``fn`` on every task and pass each one's records to ``keep`` as it finishes.

    Parameters
    ----------
    fn : callable
        A module-level function (worker processes import it by name).
    todo : sequence
        Its tasks, each picklable.
    keep : callable
        Called in this process with each task's records, in the order they finish.
    workers : int
        Local processes; 1 runs in this process.
    client : dask.distributed.Client, str or None
        A Dask cluster (a Client or a scheduler address) instead of local processes.
    path : Path or None
        The study's file, named in the error when a worker dies.
    """
    if not todo:
        return
    if workers == 1 and client is None:
        for task in todo:
            keep(fn(task))
        return
    submit, completed, close = _executor(fn, workers, client)
    try:
        futures = [submit(task) for task in todo]
        for fut in completed(futures):
            keep(fut.result())
    except BrokenProcessPool:
        raise EstimationError(
            "a worker process stopped abruptly. Worker processes re-import the calling "
            "script, so a script must call the study under `if __name__ == "
            '"__main__":`; otherwise the machine may have run out of memory (try fewer '
            f"workers). Finished replications are kept{' in ' + str(path) if path else ''}."
        ) from None
    finally:
        close()
