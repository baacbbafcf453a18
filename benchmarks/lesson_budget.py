"""Measure each lesson against the budgets in DESIGN.md and write benchmarks/results/lessons.{json,md}.

Budgets: full run <= 300 s on ONE CPU core with the kernel's peak memory <= 1.5 GB; FAST run (GMLIB_FAST=1)
<= 60 s; every graded test cell <= 10 s.

    python benchmarks/lesson_budget.py [solutions/02_vae ...] [--modes full fast] [--core 0]

Each run executes the solution notebook in a fresh kernel with an empty GMLIB_CACHE (so training really
happens), pinned to one core with `taskset`, and with torch limited to one thread. Peak memory is the kernel's
own maximum resident set size (getrusage), read by a cell appended to the notebook.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BUDGET = {"full_s": 300.0, "fast_s": 60.0, "peak_mb": 1536.0, "graded_cell_s": 10.0}
PEAK_CELL = ("import resource as _r; _u = _r.getrusage(_r.RUSAGE_SELF); "
             "print('PEAK_KB', _u.ru_maxrss, 'CPU_S', _u.ru_utime + _u.ru_stime)")


def _seconds(cell) -> float:
    ex = cell.get("metadata", {}).get("execution", {})
    start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def run_once(path: Path) -> dict:
    """Execute one notebook in this process's environment; wall time, kernel peak memory, slowest graded cell."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - start
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    peak_kb = int(text.split("PEAK_KB")[1].split()[0])
    cpu_s = float(text.split("CPU_S")[1].split()[0])  # the kernel's own CPU time: robust to a busy machine
    graded = [(c.metadata.get("nbgrader", {}).get("grade_id"), _seconds(c)) for c in nb.cells
              if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    slowest = max(graded, key=lambda g: g[1], default=(None, 0.0))
    return {"wall_s": round(wall, 1), "kernel_cpu_s": round(cpu_s, 1), "peak_mb": round(peak_kb / 1024, 1),
            "slowest_graded_cell": slowest[0], "slowest_graded_cell_s": round(slowest[1], 2)}


def measure(lesson_dir: Path, mode: str, core: int) -> dict:
    """Run `lesson_dir`'s notebook in a child process pinned to one core, in full or FAST mode."""
    (path,) = sorted(lesson_dir.glob("*.ipynb"))
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "GMLIB_CACHE": cache, "GMLIB_FAST": "1" if mode == "fast" else "0",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, __file__, "--child", str(path)]
        if mode == "full":
            cmd = ["taskset", "-c", str(core), *cmd]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"lesson": lesson_dir.name, "mode": mode, "error": out.stderr[-2000:]}
    return {"lesson": lesson_dir.name, "mode": mode, **json.loads(out.stdout.strip().splitlines()[-1])}


def merge_rows(new: list[dict]) -> list[dict]:
    """The rows of the last results file, with this run's rows replacing those of the same lesson and mode."""
    old = []
    if (RESULTS / "lessons.json").is_file():
        old = json.loads((RESULTS / "lessons.json").read_text()).get("rows", [])
    merged = {(r["lesson"], r["mode"]): r for r in old}
    merged.update({(r["lesson"], r["mode"]): r for r in new})
    return [merged[k] for k in sorted(merged)]


def verdict(row: dict) -> str:
    if "error" in row:
        return "ERROR"
    limit = BUDGET["full_s"] if row["mode"] == "full" else BUDGET["fast_s"]
    # the kernel's CPU time on one core: equal to wall time on an idle machine, and unaffected by a busy one
    ok = row.get("kernel_cpu_s", row["wall_s"]) <= limit and row["slowest_graded_cell_s"] <= BUDGET["graded_cell_s"]
    ok = ok and (row["mode"] == "fast" or row["peak_mb"] <= BUDGET["peak_mb"])
    return "ok" if ok else "OVER BUDGET"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lessons", nargs="*", type=Path)
    ap.add_argument("--modes", nargs="+", default=["full", "fast"], choices=["full", "fast"])
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_once(args.child)))
        return 0
    lessons = args.lessons or sorted(p for p in (ROOT / "solutions").glob("[0-9][0-9]_*") if p.is_dir())
    rows = []
    for lesson in lessons:
        for mode in args.modes:
            row = measure(lesson, mode, args.core)
            row["verdict"] = verdict(row)
            row["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "budget": BUDGET}
    try:
        import torch
        meta["torch"] = torch.__version__
    except ImportError:
        pass
    rows = merge_rows(rows)  # lessons not measured in this run keep their last figures
    (RESULTS / "lessons.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = ["# Lesson budgets", "", f"Measured {meta['date']} ({meta['machine']}, {meta['cpu_count']} cores, "
             f"torch {meta.get('torch')}); full runs pinned to one core.", "",
             "| lesson | mode | measured | wall s | kernel CPU s | kernel peak MB | slowest graded cell (s) | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['lesson']} | {r['mode']} | {r.get('date', '')} | - | - | - | - | ERROR |")
        else:
            lines.append(f"| {r['lesson']} | {r['mode']} | {r.get('date', '')} | {r['wall_s']} | "
                         f"{r.get('kernel_cpu_s', '-')} | {r['peak_mb']} | "
                         f"{r['slowest_graded_cell']} ({r['slowest_graded_cell_s']}) | {r['verdict']} |")
    (RESULTS / "lessons.md").write_text("\n".join(lines) + "\n")
    return 0 if all(r["verdict"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
