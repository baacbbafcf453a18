"""How fast does the course's grader grade, sandboxed, compared with plain nbgrader on the same batch?

    python benchmarks/grading_throughput.py [--lesson 02_vae] [--copies 4] [--repeats 5]

Writes benchmarks/results/grading.{json,md}. Two measurements:

1. Throughput: one batch of a lesson (COPIES full-marks submissions, one untouched, one with its first
   exercise unanswered) graded one submission at a time by
   - plain nbgrader (`nbgrader autograde`, its default Execute preprocessor, no isolation),
   - this course's grader without the sandbox (`python -m autograder grade --unsafe --jobs 1`),
   - this course's grader as instructors run it (`... grade --jobs 1`, sandboxed),
   - and sandboxed with `--jobs` = the number of cores.
   Every run starts from an empty gradebook and gives every notebook a cold checkpoint cache of its own (a
   relative GMLIB_CACHE lands in each kernel's working folder, as the sandbox's private /tmp cache does), so
   all of them do the same work. Wall time includes each tool's start-up; CPU time is that of the tool and
   every process it started (kernels included), which a busy machine inflates far less than wall time.
2. Sandbox overhead per notebook: start a kernel, run `1 + 1`, shut it down, REPEATS times, in the sandbox
   and as a plain kernel (the same GradingExecute either way): the difference is the price of isolation.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat
from nbgrader import utils as nbutils

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.course import generate_release  # noqa: E402
from autograder.engine import IGNORE  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PLAIN_CONFIG = """c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = "sqlite:///{root}/gradebook.db"
c.Execute.timeout = 60
"""


CPUACCT = Path("/sys/fs/cgroup/cpuacct")  # cgroup v1: CPU time of a process and everything it starts


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """Run `cmd`; wall time and the CPU time of it and all its descendants.

    The sandbox kills its kernels with their cgroup, so they are never waited for and getrusage(CHILDREN) misses
    them: where a cpuacct cgroup can be made, the command runs in one of its own and its usage is read there."""
    group = CPUACCT / f"gm-bench-{os.getpid()}-{time.monotonic_ns()}"
    try:
        group.mkdir()
    except OSError:
        group = None
    join = (lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) if group else None
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, preexec_fn=join)
    wall = time.perf_counter() - start
    if group:
        cpu = int((group / "cpuacct.usage").read_text()) / 1e9
        try:
            group.rmdir()
        except OSError:  # something it started is still running: leave the group
            pass
    else:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - use.ru_utime - use.ru_stime
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "returncode": done.returncode}


def write_batch(lesson: str, folder: Path, copies: int) -> tuple[Path, dict[str, float | None]]:
    """Submissions <student>/<nb>; also the source notebook for the expected scores."""
    source_dir = ROOT / "solutions" / lesson
    (source_path,) = sorted(p for p in source_dir.glob("*.ipynb"))
    released_dir = ROOT / "course" / lesson
    if not released_dir.is_dir():
        released_dir = generate_release(ROOT / "solutions", lesson, folder / "release" / lesson)
    source = nbformat.read(source_path, as_version=4)
    released = nbformat.read(released_dir / source_path.name, as_version=4)
    answers = {c.metadata.nbgrader["grade_id"]: c.source for c in source.cells
               if nbutils.is_solution(c) and not nbutils.is_grade(c)}  # fmt: skip

    def filled(skip: str = "") -> nbformat.NotebookNode:
        nb = nbformat.from_dict(json.loads(json.dumps(released)))
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid in answers and gid != skip:
                cell.source = answers[gid]
        return nb

    subs = folder / "subs"
    batch = {f"full{i}": filled() for i in range(copies)}
    batch |= {"untouched": released, "one_unanswered": filled(skip=next(iter(answers)))}
    for student, nb in batch.items():
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / source_path.name)
    return subs, source_path


def plain_nbgrader(lesson: str, subs: Path, folder: Path, env: dict[str, str]) -> dict:
    root = folder / "plain"
    shutil.copytree(ROOT / "solutions" / lesson, root / "source" / lesson, ignore=shutil.ignore_patterns(*IGNORE))
    (root / "nbgrader_config.py").write_text(PLAIN_CONFIG.format(root=str(root)))
    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run([*nbgrader, "generate_assignment", lesson, "--force", "--create"], cwd=root, env=env,
                   check=True, capture_output=True)  # fmt: skip
    for student in sorted(p.name for p in subs.iterdir()):
        shutil.copytree(subs / student, root / "submitted" / student / lesson)
    run = _timed([*nbgrader, "autograde", lesson, "--create", "--force"], root, env)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root}/gradebook.db") as gb:
        run["scores"] = {s.student.id: float(s.score) for s in gb.assignment_submissions(lesson)}
    return run


def ours(lesson: str, subs: Path, work: Path, env: dict[str, str], *extra: str) -> dict:
    run = _timed([sys.executable, "-m", "autograder", "grade", lesson, str(subs), "--workdir", str(work), *extra],
                 ROOT, env)  # fmt: skip
    with (work / "grades" / f"{lesson}.csv").open() as f:
        run["scores"] = {r["student"]: float(r["score"]) for r in csv.DictReader(f)}
    history = [json.loads(line) for line in (work / "history.jsonl").read_text().splitlines()]
    run["per_submission_s"] = round(statistics.mean(h["seconds"] for h in history), 2)
    return run


def kernel_overhead(repeats: int) -> dict:
    """Seconds to start a kernel, run one cell and stop it: sandboxed and plain, through GradingExecute."""
    from autograder.execute import GradingExecute
    from autograder.settings import nbgrader_config

    out = {}
    for label, sandboxed in (("plain", False), ("sandboxed", True)):
        times = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="gm-overhead-") as tmp:
                nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
                config = nbgrader_config(tmp, sandbox=sandboxed)
                start = time.perf_counter()
                GradingExecute(config=config).preprocess(nb, {"metadata": {"path": tmp}})
                times.append(time.perf_counter() - start)
                assert nb.cells[0].outputs[0]["data"]["text/plain"] == "2"
        out[label] = {"median_s": round(statistics.median(times), 2), "all_s": [round(t, 2) for t in times]}
    out["overhead_s"] = round(out["sandboxed"]["median_s"] - out["plain"]["median_s"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", default="02_vae")
    parser.add_argument("--copies", type=int, default=4, help="full-marks submissions in the batch")
    parser.add_argument("--repeats", type=int, default=5, help="kernel starts per mode for the overhead")
    parser.add_argument("--threads", default="1", help="OMP/MKL threads of unsandboxed kernels (the sandbox uses 1; "
                        "'default' leaves torch's own choice)")  # fmt: skip
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    env = dict(os.environ, GMLIB_FAST="1", GMLIB_CACHE="gmlib-cache", PYTHONPATH=str(ROOT))
    if args.threads != "default":
        env |= {"OMP_NUM_THREADS": args.threads, "MKL_NUM_THREADS": args.threads}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # nbgrader runs alembic
    with tempfile.TemporaryDirectory(prefix="gm-throughput-") as tmp:
        folder = Path(tmp)
        subs, _ = write_batch(args.lesson, folder, args.copies)
        n = len(list(subs.iterdir()))
        runs = {"plain nbgrader": plain_nbgrader(args.lesson, subs, folder, env)}
        runs["ours --unsafe, 1 job"] = ours(args.lesson, subs, folder / "w1", env, "--unsafe", "--jobs", "1")
        runs["ours sandboxed, 1 job"] = ours(args.lesson, subs, folder / "w2", env, "--jobs", "1")
        runs[f"ours sandboxed, {cores} jobs"] = ours(args.lesson, subs, folder / "w3", env, "--jobs", str(cores))
    scores = {label: r.pop("scores") for label, r in runs.items()}
    reference = scores["plain nbgrader"]
    for label, got in scores.items():
        if got != reference:
            raise RuntimeError(f"{label} graded differently from plain nbgrader: {got} vs {reference}")
    for r in runs.values():
        r["per_minute_wall"] = round(60 * n / r["wall_s"], 1)
        r["cpu_s_per_submission"] = round(r["cpu_s"] / n, 2)
    result = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {cores} cores",
        "cores": cores,
        "lesson": args.lesson,
        "threads_unsandboxed": args.threads,
        "submissions": n,
        "scores": reference,
        "runs": runs,
        "kernel_overhead": kernel_overhead(args.repeats),
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "grading.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "grading.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    busy = r["load_average_after"][0] > r["cores"]  # 1-minute load: the grader itself keeps at most `cores` busy
    load = "so wall times are inflated by other work on the machine; CPU times much less" if busy else "no other work"
    lines = [
        "# Grading throughput",
        "",
        f"Measured {r['measured']} ({r['machine']}; load average {r['load_average_after']} after the runs, "
        f"{load}) with `python benchmarks/grading_throughput.py`.",
        f"Batch: lesson {r['lesson']}, {r['submissions']} submissions, FAST mode, every notebook with a cold "
        f"checkpoint cache; every tool gave the same scores ({sorted(set(r['scores'].values()))}). Torch threads per "
        f"kernel: 1 in the sandbox, {r['threads_unsandboxed']} in the others.",
        "",
        "| grader | wall s | submissions / min (wall) | CPU s (all processes) | CPU s / submission | "
        "mean s / submission (history) |",
        "|---|---|---|---|---|---|",
    ]
    for label, x in r["runs"].items():
        lines.append(f"| {label} | {x['wall_s']} | {x['per_minute_wall']} | {x['cpu_s']} | {x['cpu_s_per_submission']} | "
                     f"{x.get('per_submission_s', '-')} |")  # fmt: skip
    k = r["kernel_overhead"]
    lines += [
        "",
        f"Sandbox overhead per notebook (start a kernel, run one cell, stop it; median of "
        f"{len(k['plain']['all_s'])}): plain {k['plain']['median_s']} s, sandboxed {k['sandboxed']['median_s']} s, "
        f"overhead {k['overhead_s']} s.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
