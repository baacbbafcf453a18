"""The course's lessons: find them, and generate their student notebooks with nbgrader.

`generate_release` runs nbgrader's generate_assignment in a temporary course root (own gradebook), so the
repository's nbgrader state is never touched; `compare_trees` and `sync_tree` compare or copy the result.
"""

from __future__ import annotations

import filecmp
import re
import shutil
import tempfile
from fnmatch import fnmatch
from pathlib import Path

from .engine import IGNORE, check, open_api

__all__ = ["list_lessons", "source_notebooks", "generate_release", "compare_trees", "sync_tree", "tree_files"]

LESSON_NAME = re.compile(r"^\d+_[A-Za-z0-9_-]+$")  # 02_vae, 99_demo


def list_lessons(source_root: Path) -> list[str]:
    """Lessons under `source_root`: folders named like `02_vae` holding at least one notebook."""
    if not source_root.is_dir():
        return []
    return sorted(
        p.name for p in source_root.iterdir() if p.is_dir() and LESSON_NAME.match(p.name) and any(p.glob("*.ipynb"))
    )


def source_notebooks(lesson_dir: Path) -> list[Path]:
    """The notebooks of a lesson folder, sorted by name."""
    return sorted(p for p in lesson_dir.glob("*.ipynb") if not _ignored(p.name))


def generate_release(source_root: Path, lesson: str, dest: Path) -> Path:
    """Write the student version of `source_root/lesson` to the (new) folder `dest`; returns `dest`."""
    with tempfile.TemporaryDirectory(prefix="gm-generate-") as tmp:
        root = Path(tmp)
        shutil.copytree(source_root / lesson, root / "source" / lesson, ignore=shutil.ignore_patterns(*IGNORE))
        api = open_api(root)
        check(api.generate_assignment(lesson, force=True, create=True), f"nbgrader generate_assignment {lesson}")
        shutil.copytree(root / "release" / lesson, dest)
    return dest


def tree_files(folder: Path) -> set[str]:
    """Paths (relative, '/'-separated) of the files under `folder`, leaving out what nbgrader ignores."""
    if not folder.is_dir():
        return set()
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not any(_ignored(part) for part in p.relative_to(folder).parts)
    }


def compare_trees(expected: Path, actual: Path) -> list[str]:
    """How `actual` differs from `expected`, byte for byte: one line per file ('differs', 'missing', 'extra')."""
    want, have = tree_files(expected), tree_files(actual)
    problems = [f"{actual / name}: missing" for name in sorted(want - have)]
    problems += [f"{actual / name}: extra" for name in sorted(have - want)]
    problems += [
        f"{actual / name}: differs"
        for name in sorted(want & have)
        if not filecmp.cmp(expected / name, actual / name, shallow=False)
    ]
    return sorted(problems)


def sync_tree(src: Path, dest: Path) -> list[str]:
    """Make `dest` hold exactly the files of `src` (ignored files aside); returns the paths changed."""
    want, have = tree_files(src), tree_files(dest)
    changed = []
    for name in sorted(have - want):
        (dest / name).unlink()
        changed.append(f"{dest / name} (removed)")
    for name in sorted(want):
        target = dest / name
        if name in have and filecmp.cmp(src / name, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / name, target)
        changed.append(str(target))
    for folder in sorted((p for p in dest.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return changed


def _ignored(name: str) -> bool:
    return any(fnmatch(name, pattern) for pattern in IGNORE)
