"""The mutation score of every lesson's tests: `python -m autograder mutate` on each, one table.

    python benchmarks/mutation_scores.py [00_foundations ...] [--summary-only]

Runs the mutate command (sandboxed, FAST mode, a private checkpoint cache) on each lesson, keeps its JSON
report in benchmarks/results/mutation/<lesson>.json, and writes benchmarks/results/mutation.md: per lesson
and exercise the mutants caught, and every surviving mutant (a gap in the tests, or a change that computes
the same thing, such as `dim=1 -> dim=-1` on a 2-D tensor). `--summary-only` rewrites the table from the
reports already there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "mutation"


def run(lesson: str) -> None:
    with tempfile.TemporaryDirectory(prefix="gm-mutate-cache-") as cache:
        env = dict(os.environ, GMLIB_FAST="1", GMLIB_CACHE=cache, PYTHONPATH=str(ROOT))
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "autograder", "mutate", lesson, "--json", str(OUT / f"{lesson}.json")],
                              cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"mutate {lesson} failed:\n{done.stderr[-3000:]}")
    report = json.loads((OUT / f"{lesson}.json").read_text())
    report["wall_s"] = round(time.perf_counter() - start, 1)
    (OUT / f"{lesson}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(done.stdout)


def summary() -> str:
    reports = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))]
    caught, total = sum(r["caught"] for r in reports), sum(r["total"] for r in reports)
    lines = [
        "# Mutation scores of the lessons' tests",
        "",
        "`python benchmarks/mutation_scores.py` (`python -m autograder mutate LESSON` on each lesson, sandboxed, "
        "FAST mode; at most 12 mutants per exercise, spread over the kinds: flip a sign, drop a term, swap an "
        "operator, change a reduction axis, sum/mean, off-by-one). A mutant is caught when a graded test cell of its "
        "exercise would lose its points.",
        "",
        f"All lessons: **{caught}/{total} caught ({100 * caught / total:.0f} %)**." if total else "No reports.",
        "",
        "| lesson | exercises | caught / mutants | score | wall s |",
        "|---|---|---|---|---|",
    ]
    for r in reports:
        score = f"{100 * r['score']:.0f} %" if r["score"] is not None else "-"
        counts = f"{r['caught']}/{r['total']}"
        lines.append(f"| {r['lesson']} | {len(r['exercises'])} | {counts} | {score} | {r.get('wall_s', '-')} |")
    lines += ["", "## Surviving mutants", ""]
    for r in reports:
        for e in r["exercises"]:
            for m in e["mutants"]:
                if not m["caught"]:
                    lines.append(f"- {r['lesson']} `{e['exercise']}` line {m['line']} ({m['kind']}): {m['description']}")
            if e.get("error"):
                lines.append(f"- {r['lesson']} `{e['exercise']}`: the solution's own tests failed: {e['error']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="default: every lesson in solutions/")
    parser.add_argument("--summary-only", action="store_true", help="only rewrite mutation.md from the reports")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        for lesson in args.lessons or sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir()):
            run(lesson)
    text = summary()
    (OUT.parent / "mutation.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
