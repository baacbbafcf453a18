"""The grader's other back ends, through the real CLI on the fixture lesson (99_demo: add 2 points, square 3):
a PostgreSQL gradebook on a real server started here, a Dask local cluster, the refusal to grade
unsandboxed, and the mutation command.

A batch of three: `right` (5), `blank` (0), `wrong_add` (3: its add fails the hidden tests only).
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.course import generate_release
from autograder.sandbox import probe

from .conftest import CLI_TIMEOUT, FIXTURE_ROOT, REPO, with_answers

pytestmark = pytest.mark.slow

LESSON = "99_demo"
NB = f"{LESSON}.ipynb"
EXPECTED = {"right": 5.0, "blank": 0.0, "wrong_add": 3.0}
UNSAFE = ["--unsafe"] if probe() else []  # these tests are about the engines; test_hostile covers the sandbox


def _answer(nb, add: str, square: str):
    return with_answers(nb, {"demo_add": add, "demo_square": square})


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """Folder of the three submissions."""
    tmp = tmp_path_factory.mktemp("engines")
    released = nbformat.read(generate_release(FIXTURE_ROOT / "solutions", LESSON, tmp / "release") / NB, as_version=4)
    square = "def square(x):\n    return x * x\n"
    notebooks = {
        "right": _answer(released, "def add(a, b):\n    return a + b\n", square),
        "blank": released,
        "wrong_add": _answer(released, "def add(a, b):\n    return a + b if a > 0 else 1\n", square),
    }
    for student, nb in notebooks.items():
        (tmp / "subs" / student).mkdir(parents=True)
        nbformat.write(nb, tmp / "subs" / student / NB)
    return tmp / "subs"


def _scores(workdir: Path) -> dict[str, float]:
    with (workdir / "grades" / f"{LESSON}.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert all(r["status"] == "ok" for r in rows), rows
    return {r["student"]: float(r["score"]) for r in rows}


def _run(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT)  # fmt: skip


# ---------------------------------------------------------------- PostgreSQL


def _initdb() -> Path | None:
    """The folder of the PostgreSQL server's programs (Debian keeps them off PATH, in /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    found = found[-1] if found else shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server (unix socket only, trust auth) with an empty database; its SQLAlchemy URL."""
    bindir = _initdb()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb): Debian `apt-get install postgresql` (make system-deps)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install 'psycopg[binary]' (the grading extra)")
    folder = Path(tempfile.mkdtemp(prefix="gm-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as postgres (Debian) or nobody
        known = subprocess.run(["id", "postgres"], capture_output=True).returncode == 0
        user = "postgres" if known else "nobody"
        shutil.chown(folder, user)
        as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
    with socket.socket() as s:  # a free port number names the socket; nothing listens on TCP
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True, timeout=120)  # noqa: E731
    done = run(bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync")
    assert done.returncode == 0, done.stderr
    done = run(bindir / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-t", "60", "start",
               "-o", f"-k {folder} -p {port} -c listen_addresses='' -c fsync=off")  # fmt: skip
    assert done.returncode == 0, done.stderr + (folder / "server.log").read_text()
    try:
        done = run(bindir / "createdb", "-h", folder, "-p", port, "-U", "postgres", "course")
        assert done.returncode == 0, done.stderr
        yield f"postgresql+psycopg://postgres@/course?host={folder}&port={port}"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.postgres
def test_postgresql_gradebook(postgres_url, batch: Path, tmp_path: Path, grading_env):
    """Does `--db postgresql+psycopg://...` keep the gradebook in the PostgreSQL server (and no SQLite file),
    with the right grades, exported from there, and a second run keeping them unchanged?"""
    work = tmp_path / "work"
    done = _run("--root", FIXTURE_ROOT, "--db", postgres_url, "grade", LESSON, batch, "--workdir", work,
                "--timeout", 20, *UNSAFE, env=grading_env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert _scores(work) == EXPECTED
    assert not (work / "gradebook.db").exists(), "graded into SQLite instead of the PostgreSQL server"
    with Gradebook(postgres_url) as gb:  # read back with nbgrader's own API, straight from the server
        assert {s: gb.find_submission(LESSON, s).score for s in EXPECTED} == EXPECTED
        assert gb.db.bind.dialect.name == "postgresql"
    env = dict(grading_env, GM_GRADEBOOK_URL=postgres_url)  # the URL can also come from the environment
    export = _run("export", "--workdir", work, "--out", "-", env=env)
    assert export.returncode == 0, export.stderr
    exported = {r["student"]: float(r["score"]) for r in csv.DictReader(export.stdout.splitlines())}
    assert exported == EXPECTED
    again = _run("--root", FIXTURE_ROOT, "grade", LESSON, batch, "--workdir", work, "--timeout", 20, *UNSAFE, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("unchanged since") == len(EXPECTED) and _scores(work) == EXPECTED


# ---------------------------------------------------------------- Dask


def test_dask_local_cluster(batch: Path, tmp_path: Path, grading_env):
    """Does `--dask local:2` grade the batch on a Dask cluster (worker processes) with the same grades?"""
    pytest.importorskip("distributed", reason="Dask distributed: pip install distributed (the grading extra)")
    work = tmp_path / "work"
    done = _run("--root", FIXTURE_ROOT, "grade", LESSON, batch, "--workdir", work, "--timeout", 20,
                "--dask", "local:2", *UNSAFE, env=grading_env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on Dask at tcp://" in done.stderr
    assert _scores(work) == EXPECTED
    bad = _run("--root", FIXTURE_ROOT, "grade", LESSON, batch, "--workdir", work, "--dask", "local:0", env=grading_env)
    assert bad.returncode == 1 and "expected local or local:N with N >= 1" in bad.stderr


# ---------------------------------------------------------------- no sandbox: refuse unless --unsafe


def test_refuses_without_sandbox_unless_unsafe(batch: Path, tmp_path: Path, grading_env):
    """Where the sandbox cannot be made (here: bubblewrap missing), does grading refuse with exit status 3,
    naming what is missing and grading nothing; and with --unsafe grade anyway, warning loudly?"""
    env = dict(grading_env, GM_BWRAP=str(tmp_path / "no-such-bwrap"))
    work = tmp_path / "work"
    refused = _run("--root", FIXTURE_ROOT, "grade", LESSON, batch, "--workdir", work, env=env)
    assert refused.returncode == 3, refused.stderr
    assert "REFUSING TO GRADE" in refused.stderr and "no-such-bwrap` not found" in refused.stderr
    assert not (work / "grades").exists() and not (work / "gradebook.db").exists()
    unsafe = _run("--root", FIXTURE_ROOT, "grade", LESSON, batch, "--workdir", work, "--timeout", 20, "--unsafe", env=env)
    assert unsafe.returncode == 0, unsafe.stderr[-3000:]
    assert "WARNING: grading WITHOUT a sandbox" in unsafe.stderr
    assert _scores(work) == EXPECTED


# ---------------------------------------------------------------- mutation command


def test_mutation_command_finds_the_weak_test(tmp_path: Path, grading_env):
    """With add's tests weakened to `add(0, 0) == 0`, does `mutate` report every mutant of add as surviving
    and every mutant of square as caught?"""
    root = tmp_path / "course"
    shutil.copytree(FIXTURE_ROOT, root)
    path = root / "solutions" / LESSON / NB
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_demo_add":
            cell.source = "assert add(0, 0) == 0\nprint('visible tests passed')"
    nbformat.write(nb, path)
    done = _run("--root", root, "mutate", LESSON, "--json", tmp_path / "report.json", "--timeout", 20, *UNSAFE,
                env=grading_env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    by = {e["exercise"]: e for e in report["exercises"]}
    assert set(by) == {"demo_add", "demo_square"} and not by["demo_add"]["error"] and not by["demo_square"]["error"]
    kinds = {m["kind"] for m in by["demo_add"]["mutants"]}
    assert {"swap operator", "drop a term", "flip a sign"} <= kinds
    # a - b, a, b and -(a + b) all give 0 for (0, 0): none is caught; square's tests catch every mutant
    assert by["demo_add"]["caught"] == 0 and by["demo_add"]["total"] >= 4
    assert by["demo_square"]["caught"] == by["demo_square"]["total"] >= 3
    assert f"{report['caught']}/{report['total']} mutants caught" in done.stdout
    assert "survived" in done.stdout and "`a + b`" in done.stdout
