"""A corpus of hostile and damaged submissions, graded as ONE batch through the real CLI, in the sandbox.

The fixture lesson tests/fixtures/guarded (98_guard: exercise 1 `mean_of`, 2 points; exercise 2 `scale`, 3
points; hidden tests export values with autograder.expect) makes each case cheap. Most hostile code sits
in `mean_of`, so it fires while exercise 1 is tested: it must cost exercise 1 only (3/5). For every case:
the grade it must get, the others in the batch graded, the gradebook intact, and nothing outside the
submission's own folder read or written (probes inside the submissions turn any leak into a wrong answer,
and the host checks its canaries, the submissions and the gradebook afterwards).
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import re
import socket
import sqlite3
import threading
import uuid
from pathlib import Path

import nbformat
import pytest

from autograder.course import generate_release
from autograder.sandbox import probe

from .conftest import with_answers

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "tests" / "fixtures" / "guarded"
LESSON = "98_guard"
NB = f"{LESSON}.ipynb"
MEAN = "def mean_of(xs):\n    return sum(xs) / len(xs)\n"
SCALE = "def scale(xs, k):\n    return [x * k for x in xs]\n"

HOSTILE_MEAN = {  # student -> source of the mean_of answer cell; all of them must score 3 (exercise 2 only)
    "infinite_loop": "def mean_of(xs):\n    while True:\n        pass\n",
    "ignores_sigint": "import signal\n\ndef mean_of(xs):\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "    while True:\n        pass\n",
    "memory_bomb": "def mean_of(xs):\n    hog = []\n    while True:\n        hog.append(b'x' * (64 * 2**20))\n",
    "fork_bomb": "import os\n\ndef mean_of(xs):\n    while True:\n        os.fork()\n",
    "sys_exit": "import sys\n\ndef mean_of(xs):\n    sys.exit(0)\n",
    "os_exit": "import os\n\ndef mean_of(xs):\n    os._exit(0)\n",
    "segfault": "import ctypes\n\ndef mean_of(xs):\n    return ctypes.string_at(0)\n",
    "always_equal": "class Anything(float):\n    def __eq__(self, other):\n        return True\n\n"
    "    def __sub__(self, other):\n        return Anything(0.0)\n\n    def __abs__(self):\n        return 0.0\n\n"
    "def mean_of(xs):\n    return Anything(0.0)\n",
    "patched_builtins": "import builtins\n\nbuiltins.abs = lambda x: 0.0  # the visible test now passes for anything\n"
    "get_ipython().set_custom_exc((Exception,), lambda *args, **kwargs: None)  # and no error is ever shown\n\n"
    "def mean_of(xs):\n    return 0.0\n",
}


def _answers(nb, mean: str = MEAN, scale: str = SCALE):
    return with_answers(nb, {"guard_mean": mean, "guard_scale": scale})


def _snoop(targets: list[str], writes: list[str]) -> str:
    """mean_of that is right only if no target could be read, no neighbour seen, and (after) nothing written."""
    return (
        "import os\n\n"
        f"TARGETS = {targets!r}\nWRITES = {writes!r}\n\n"
        "def _leaks():\n    found = []\n    for path in TARGETS:\n        try:\n"
        "            with open(path, 'rb') as f:\n                f.read(1)\n            found.append(path)\n"
        "        except OSError:\n            pass\n"
        "    found += [name for name in os.listdir('.') if name != '98_guard.ipynb']\n"
        "    for path in WRITES:\n        try:\n            with open(path, 'w') as f:\n                f.write('pwned')\n"
        "        except OSError:\n            pass\n    return found\n\n"
        "LEAKS = _leaks()\n\n"
        "def mean_of(xs):\n    return 999.0 if LEAKS else sum(xs) / len(xs)\n"
    )


def _network(port: int) -> str:
    return (
        "import socket\n\n"
        "def _reach():\n    try:\n"
        f"        s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "        s.sendall(b'pwned')\n        s.close()\n        return True\n"
        "    except OSError:\n        return False\n\n"
        "REACHED = _reach()\n\n"
        "def mean_of(xs):\n    return 999.0 if REACHED else sum(xs) / len(xs)\n"
    )


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def listener():
    """A TCP server on the host's loopback that records whether anyone connected."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    hits: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            hits.append(conn.recv(100))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join(timeout=5)
    server.close()


def _write_corpus(subs: Path, work: Path, released: Path, port: int, canaries: list[Path]) -> dict[str, float | None]:
    """Write the batch; returns student -> expected score (None: must fail with a reason)."""
    rel = nbformat.read(released / NB, as_version=4)
    expected: dict[str, float | None] = {}

    def put(student: str, nb_or_bytes, score: float | None) -> None:
        path = subs / student / NB
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(nb_or_bytes, bytes):
            path.write_bytes(nb_or_bytes)
        else:
            nbformat.write(nb_or_bytes, path)
        expected[student] = score

    correct = _answers(rel)
    put("correct", correct, 5.0)
    put("blank", rel, 0.0)
    put("one_wrong", _answers(rel, scale="def scale(xs, k):\n    return [x * -k for x in xs]\n"), 2.0)
    for student, mean in HOSTILE_MEAN.items():
        put(student, _answers(rel, mean=mean), 3.0)
    targets = [str(work / "gradebook.db"), str(ROOT / "solutions" / LESSON / NB), str(subs / "correct" / NB),
               str(REPO / "solutions"), "/etc/shadow", str(Path.home() / ".bash_history")]  # fmt: skip
    put("snoop", _answers(rel, mean=_snoop(targets, [str(c) for c in canaries])), 5.0)
    put("network", _answers(rel, mean=_network(port)), 5.0)
    # every later test cell turned into `pass` by an input transformer: nothing fails inside the kernel, but
    # the hidden tests' values are never exported, and the grader (outside the kernel) sees that
    skip = ("def _skip(lines):\n    return ['pass\\n'] if any('visible tests' in line for line in lines) else lines\n\n"
            "get_ipython().input_transformers_cleanup.append(_skip)\n\ndef mean_of(xs):\n    return 0.0\n")
    put("skips_tests", _answers(rel, mean=skip, scale="def scale(xs, k):\n    return []\n"), 0.0)
    # the scale cell runs after mean_of's test cell and prints the kernel's input history, hidden tests included
    put("leaks_tests", _answers(rel, scale=SCALE + "\nprint(In)\nprint('\\n'.join(In))\n"), 5.0)
    flood = "for _ in range(100):\n    print('x' * 2**20)  # 100 MiB of output\n\n" + MEAN
    put("big_output", _answers(rel, mean=flood), 5.0)

    deleted = _answers(rel)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in
                     ("test_guard_mean", "guard_setup")]  # fmt: skip
    put("deleted_cells", deleted, 5.0)
    edited = _answers(rel, mean="def mean_of(xs):\n    return 0.0\n")
    for cell in edited.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_guard_mean":
            cell.source = "print('visible tests passed')"
    put("edited_cell", edited, 3.0)
    dup = _answers(rel)
    extra = []
    for cell in dup.cells:
        extra.append(cell)
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in ("test_guard_scale", "guard_mean"):
            copy = nbformat.from_dict(json.loads(json.dumps(cell)))
            copy["id"] = uuid.uuid4().hex[:8]
            if gid == "guard_mean":
                copy.source = "def mean_of(xs):\n    return 0.0\n"
            extra.append(copy)
    dup.cells = extra
    put("duplicated_cells", dup, 5.0)
    retyped = _answers(rel)
    for i, cell in enumerate(retyped.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "guard_scale":
            retyped.cells[i] = nbformat.v4.new_markdown_cell(cell.source, metadata=cell.metadata)
    put("changed_type", retyped, 5.0)
    put("invalid_json", b'{"cells": [\n  {\n    oops\n', None)
    put("old_nbformat", nbformat.writes(nbformat.convert(correct, 3), version=3).encode(), 5.0)
    latin1 = nbformat.writes(correct).replace("That is all.", "That is all NOT-UTF8.").encode()
    put("non_utf8", latin1.replace(b"NOT-UTF8", b"caf\xe9 \xff"), 5.0)
    return expected


@pytest.mark.skipif(bool(probe()), reason="the sandbox cannot be made here: " + "; ".join(probe()))
def test_hostile_corpus_is_graded_safely(tmp_path: Path, cli, listener):
    """Does every submission of the corpus get its grade, in one batch, with the gradebook intact and nothing
    outside each submission's folder read or written?"""
    port, hits = listener
    released = generate_release(ROOT / "solutions", LESSON, tmp_path / "release")
    subs, work = tmp_path / "subs", tmp_path / "work"
    canaries = [tmp_path / f"canary-{uuid.uuid4().hex}", work / "pwned.txt", REPO / f"pwned-{uuid.uuid4().hex}"]
    canaries.append(Path("/tmp") / f"gm-canary-{uuid.uuid4().hex}")
    expected = _write_corpus(subs, work, released, port, canaries)
    before = _tree_digest(subs), _tree_digest(ROOT)

    grade = ("--root", ROOT, "grade", LESSON, subs, "--workdir", work, "--timeout", 5, "--memory", 512, "--pids", 64)
    done = cli(*grade, "--jobs", 2)
    assert (work / "grades" / f"{LESSON}.csv").is_file(), done.stderr[-3000:]
    with (work / "grades" / f"{LESSON}.csv").open() as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}

    got = {s: (None if rows[s]["status"] == "failed" else float(rows[s]["score"])) for s in expected}
    assert got == expected, "\n".join(f"{s}: {rows[s]}" for s in expected if got[s] != expected[s])
    assert rows["invalid_json"]["reason"].endswith("not valid JSON (line 3, column 5): Expecting property name "
                                                   "enclosed in double quotes")  # fmt: skip
    assert done.returncode == 1 and "invalid_json" in done.stderr
    reasons = {s: rows[s]["reason"] for s in expected}
    assert "kernel lost" in reasons["os_exit"] and "kernel lost" in reasons["segfault"]
    assert "kernel lost" in reasons["memory_bomb"] and "kernel lost" in reasons["ignores_sigint"]
    assert "timeout" in reasons["infinite_loop"]
    assert "missing, restored" in reasons["deleted_cells"] and "locked cell edited" in reasons["edited_cell"]
    assert "duplicate" in reasons["duplicated_cells"] and "changed back to code" in reasons["changed_type"]
    assert "upgraded from nbformat 3" in reasons["old_nbformat"] and "not UTF-8" in reasons["non_utf8"]
    assert "output truncated" in reasons["big_output"]
    assert (work / "autograded" / "big_output" / LESSON / NB).stat().st_size < 5 * 2**20

    # nothing outside the submission's folder was read (the probes would have scored 999) or written
    assert hits == [], f"a kernel reached the host's network: {hits}"
    assert [c for c in canaries if c.exists()] == []
    assert (_tree_digest(subs), _tree_digest(ROOT)) == before, "the submissions or the lesson source changed"
    # the gradebook is intact and holds exactly the CSV's scores
    db = sqlite3.connect(work / "gradebook.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    export = cli("export", "--workdir", work, "--out", "-")
    assert export.returncode == 0, export.stderr
    exported = {r["student"]: r for r in csv.DictReader(export.stdout.splitlines())}
    for student, score in expected.items():
        assert exported[student]["score"] == ("0" if score is None else f"{score:g}"), (student, exported[student])
    history = [json.loads(line) for line in (work / "history.jsonl").read_text().splitlines()]
    assert sorted(h["student"] for h in history) == sorted(expected)

    # feedback: hidden tests and their tracebacks stay hidden; the report says "visible tests passed"
    fb = cli("--root", ROOT, "feedback", LESSON, "--workdir", work)
    assert fb.returncode == 0, fb.stderr
    for student in ("one_wrong", "leaks_tests"):  # the latter printed the hidden tests from inside its kernel
        html_page = work / "feedback" / student / LESSON / NB.replace(".ipynb", ".html")
        page = html.unescape(re.sub(r"<[^>]+>", "", html_page.read_text()))
        for secret in ("BEGIN HIDDEN TESTS", "mean with negatives", "scale([1.5, -2.0, 0.0], -2.0)"):
            assert secret not in page, (student, secret)
        assert "visible tests passed" in page and "all tests passed" not in page
    assert "output removed: it quoted a hidden test" in page

    # grading the same batch again (same settings; the number of jobs is no setting) changes nothing, runs nothing
    again = cli(*grade, "--jobs", 1)
    with (work / "grades" / f"{LESSON}.csv").open() as f:
        assert {r["student"]: r for r in csv.DictReader(f)} == rows
    assert again.stderr.count("unchanged since") == len(expected)  # the unreadable file too: same bytes, same 0
