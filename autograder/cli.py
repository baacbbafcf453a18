"""`gm-grade` / `python -m autograder`: generate the course, grade submissions, feedback, export.

Exit status: 0 on success, 1 when something failed (a submission not graded, course/ out of date, an
nbgrader error), 2 for a wrong command line, 3 when grading refuses to run students' code unsandboxed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

from .course import compare_trees, generate_release, list_lessons, sync_tree
from .engine import NbGraderError, check, open_api
from .grading import grade_columns, grade_lesson
from .reports import export_gradebook, format_table, write_grades
from .sandbox import probe
from .settings import CELL_TIMEOUT, NOTEBOOK_TIMEOUT, RELEASE_DIR, SOURCE_DIR, STATE_DIR

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]


DB_ENV = "GM_GRADEBOOK_URL"  # a gradebook URL (any SQLAlchemy URL) when --db is not given
REFUSED = 3  # exit status when the sandbox cannot be made and --unsafe was not given


class UsageError(Exception):
    """A problem with what was asked (exit status 2)."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # nbgrader logs through traitlets; we print our own summary (use --verbose to see nbgrader's log).
    logger = logging.getLogger("traitlets")
    logger.addHandler(logging.StreamHandler() if args.verbose else logging.NullHandler())
    logger.setLevel(logging.INFO if args.verbose else logging.CRITICAL)
    # nbgrader 0.9 adds gradebook rows in a way SQLAlchemy 2 warns about, harmlessly, on every new submission.
    warnings.filterwarnings("ignore", message=r"Object of type <\w+> not in session")
    try:
        return args.run(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (NbGraderError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gm-grade", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="course repository (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show nbgrader's log")
    parser.add_argument(
        "--db", metavar="URL", default=os.environ.get(DB_ENV) or None,
        help=f"gradebook as an SQLAlchemy URL, e.g. postgresql+psycopg://user@host/course (default: ${DB_ENV}, "
        "else WORKDIR/gradebook.db)",
    )  # fmt: skip
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help=f"regenerate {RELEASE_DIR}/ from {SOURCE_DIR}/ with nbgrader")
    p.add_argument("lessons", nargs="*", metavar="LESSON", help=f"default: every lesson in {SOURCE_DIR}/")
    p.add_argument("--check", action="store_true", help=f"write nothing; exit 1 if {RELEASE_DIR}/ is out of date")
    p.set_defaults(run=cmd_generate)

    p = sub.add_parser("grade", help="autograde a folder or .zip of submissions of one lesson")
    p.add_argument("lesson", metavar="LESSON")
    p.add_argument("submissions", type=Path, metavar="SUBMISSIONS", help="folder or .zip: <student>/<nb>.ipynb")
    _workdir(p)
    p.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell (default: %(default)s)")
    p.add_argument("--notebook-timeout", type=int, default=NOTEBOOK_TIMEOUT,
                   help="seconds per notebook (default: %(default)s)")  # fmt: skip
    p.add_argument("--memory", type=int, metavar="MB", help="memory limit of a student's kernel (default: 2048)")
    p.add_argument("--pids", type=int, metavar="N", help="processes and threads a kernel may have (default: 256)")
    p.add_argument("--cpu", type=int, metavar="S", help="CPU seconds per kernel process (default: 900)")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                   help="submissions graded at once (default: %(default)s cores)")  # fmt: skip
    p.add_argument("--dask", metavar="local[:N]|tcp://HOST:PORT", help="grade on a Dask cluster instead of local processes")
    p.add_argument("--force", action="store_true", help="regrade submissions that have not changed since their last grade")
    p.add_argument("--unsafe", action="store_true",
                   help="run students' kernels WITHOUT the sandbox (only where it cannot be made)")  # fmt: skip
    p.set_defaults(run=cmd_grade)

    p = sub.add_parser("mutate", help="how strong are a lesson's tests? grade mutants of its solutions")
    p.add_argument("lesson", metavar="LESSON")
    p.add_argument("--exercise", action="append", metavar="GRADE_ID", help="only this answer cell (repeatable)")
    p.add_argument("--max-per-exercise", type=int, default=12, help="mutants tried per exercise (default: %(default)s)")
    p.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    p.add_argument("--unsafe", action="store_true", help="run without the sandbox")
    p.set_defaults(run=cmd_mutate)

    p = sub.add_parser("feedback", help="HTML feedback for every autograded student (hidden tests removed)")
    p.add_argument("lesson", metavar="LESSON")
    _workdir(p)
    p.set_defaults(run=cmd_feedback)

    p = sub.add_parser("export", help="CSV of every student x lesson in the gradebook")
    _workdir(p)
    p.add_argument("--out", type=Path, help="CSV file to write (default: WORKDIR/grades/export.csv; - for stdout)")
    p.set_defaults(run=cmd_export)
    return parser


def _workdir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", type=Path, help=f"nbgrader course root for grading (default: ROOT/{STATE_DIR}/work)")


def _workdir_of(args) -> Path:
    return (args.workdir or args.root / STATE_DIR / "work").resolve()


def _lessons(args, names: list[str]) -> list[str]:
    source = args.root / SOURCE_DIR
    known = list_lessons(source)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"no lesson {', '.join(unknown)} in {source} (lessons: {', '.join(known) or 'none'})")
    return names or known


def cmd_generate(args) -> int:
    source, release = args.root / SOURCE_DIR, args.root / RELEASE_DIR
    lessons = _lessons(args, args.lessons)
    problems, written = [], []
    with tempfile.TemporaryDirectory(prefix="gm-course-") as tmp:
        for lesson in lessons:
            generated = generate_release(source, lesson, Path(tmp) / lesson)
            if args.check:
                problems += compare_trees(generated, release / lesson)
            else:
                written += sync_tree(generated, release / lesson)
    if args.check and not args.lessons and release.is_dir():
        problems += [
            f"{p}: extra (no {SOURCE_DIR}/{p.name})"
            for p in sorted(release.iterdir())
            if p.is_dir() and not p.name.startswith(".") and p.name not in lessons
        ]
    if problems:
        print(f"{RELEASE_DIR}/ is not what nbgrader generates from {SOURCE_DIR}/:", file=sys.stderr)
        print("\n".join(f"  {line}" for line in problems), file=sys.stderr)
        print("run `make course` (python -m autograder generate) and commit the result", file=sys.stderr)
        return 1
    if args.check:
        print(f"{RELEASE_DIR}/ is up to date ({len(lessons)} lesson(s))")
    else:
        print("\n".join(f"wrote {path}" for path in written) or f"{RELEASE_DIR}/ already up to date")
    return 0


def cmd_grade(args) -> int:
    (lesson,) = _lessons(args, [args.lesson])
    if not args.submissions.exists():
        raise UsageError(f"{args.submissions}: no such folder or .zip file")
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    _check_sandbox(args)
    workdir = _workdir_of(args)
    limits = {k: v for k, v in (("memory_mb", args.memory), ("pids", args.pids), ("cpu_s", args.cpu)) if v}
    results = grade_lesson(
        args.root / SOURCE_DIR,
        lesson,
        args.submissions,
        workdir,
        timeout=args.timeout,
        notebook_timeout=args.notebook_timeout,
        sandbox=not args.unsafe,
        limits=limits,
        db_url=args.db,
        jobs=args.jobs,
        dask=args.dask,
        force=args.force,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    csv_path = write_grades(workdir / "grades" / f"{lesson}.csv", results, list(grade_columns(workdir, lesson)))
    print(format_table(results))
    print(f"grades written to {csv_path}")
    failed = [r for r in results if r.status != "ok"]
    if not results:
        print(f"error: no submissions found in {args.submissions}", file=sys.stderr)
        return 1
    if failed:
        print(f"error: {len(failed)} of {len(results)} submission(s) could not be graded:", file=sys.stderr)
        print("\n".join(f"  {r.reason}" for r in failed), file=sys.stderr)
        return 1
    return 0


def _check_sandbox(args) -> None:
    problems = probe()
    if not problems:
        return
    lines = "\n".join(f"  - {p}" for p in problems)
    if not args.unsafe:
        print(
            "REFUSING TO GRADE: students' code cannot be sandboxed on this machine:\n"
            f"{lines}\n"
            "Without the sandbox a submission can read the gradebook, the hidden tests and other students' work,\n"
            "reach the network and exhaust the machine. Fix the above (see autograder/SECURITY.md), or pass\n"
            "--unsafe to grade anyway with no isolation.",
            file=sys.stderr,
        )
        raise SystemExit(REFUSED)
    print(f"WARNING: grading WITHOUT a sandbox (--unsafe):\n{lines}", file=sys.stderr)


def cmd_mutate(args) -> int:
    from .mutate import format_report, mutation_report

    (lesson,) = _lessons(args, [args.lesson])
    _check_sandbox(args)
    report = mutation_report(
        args.root / SOURCE_DIR / lesson,
        exercises=args.exercise,
        max_per_exercise=args.max_per_exercise,
        timeout=args.timeout,
        sandbox=not args.unsafe,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    print(format_report(report))
    if args.json:
        import json

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def cmd_feedback(args) -> int:
    (lesson,) = _lessons(args, [args.lesson])
    workdir = _workdir_of(args)
    graded = sorted(p.parent.name for p in (workdir / "autograded").glob(f"*/{lesson}"))
    if not graded:
        raise UsageError(f"nothing autograded for {lesson} in {workdir}: run `grade` first")
    check(open_api(workdir, db_url=args.db).generate_feedback(lesson), f"nbgrader generate_feedback {lesson}")
    files = sorted((workdir / "feedback").glob(f"*/{lesson}/*.html"))
    print("\n".join(str(f) for f in files))
    print(f"feedback for {len(graded)} student(s) in {workdir / 'feedback'}")
    return 0


def cmd_export(args) -> int:
    workdir = _workdir_of(args)
    if not args.db and not (workdir / "gradebook.db").is_file():
        raise UsageError(f"no gradebook in {workdir}: run `grade` first")
    text, rows = export_gradebook(open_api(workdir, db_url=args.db).coursedir.db_url)
    if args.out is not None and str(args.out) == "-":
        sys.stdout.write(text)
        return 0
    out = args.out or workdir / "grades" / "export.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"{rows} row(s) written to {out}")
    return 0
