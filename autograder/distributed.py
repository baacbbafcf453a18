"""Grading on a Dask cluster: one submission per task, outcomes streamed back to the coordinator.

    --dask local          a LocalCluster with one single-threaded worker process per core
    --dask local:N        ... with N workers
    --dask tcp://host:port  an existing scheduler (dask-scheduler / dask-jobqueue on SLURM / dask-kubernetes)

Workers need this package and the course's Python environment installed (and, for the sandbox, to run as
root with bubblewrap); they need no shared file system: a task carries the bytes it needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from .worker import Outcome, Task, grade_task

__all__ = ["run_on_dask", "parse_address"]


def parse_address(spec: str) -> tuple[str, int]:
    """("local", workers) or (scheduler address, 0); ValueError for anything else."""
    if spec == "local" or spec.startswith("local:"):
        count = spec.partition(":")[2]
        if count and not (count.isdigit() and int(count) > 0):
            raise ValueError(f"--dask {spec}: expected local or local:N with N >= 1")
        return "local", int(count) if count else (os.cpu_count() or 1)
    if "://" in spec:
        return spec, 0
    raise ValueError(f"--dask {spec}: expected local, local:N or a scheduler address such as tcp://host:8786")


def run_on_dask(tasks: list[tuple[Task, str]], spec: str, progress) -> Iterator[tuple[Task, str, Outcome]]:
    from dask.distributed import Client, LocalCluster, as_completed

    address, workers = parse_address(spec)
    cluster = None
    if address == "local":
        workers = min(workers, len(tasks))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        address = cluster.scheduler_address
    try:
        with Client(address) as client:
            progress(f"grading {len(tasks)} submission(s) on Dask at {address} ...")
            futures = {}
            for task, key in tasks:
                future = client.submit(grade_task, task, pure=False, key=f"grade-{task.lesson}-{task.student}-{key[:8]}")
                futures[future] = (task, key)
            for future in as_completed(futures):
                task, key = futures[future]
                try:
                    outcome = future.result()
                except Exception as err:  # the worker (not the submission) failed
                    outcome = Outcome(task.student, "failed", reason=f"{task.folder}: Dask worker failed: {err}")
                yield task, key, outcome
    finally:
        if cluster is not None:
            cluster.close()
