"""nbgrader as a library: an API over one course root, and its results turned into exceptions."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

from .settings import nbgrader_config

__all__ = ["NbGraderError", "open_api", "check", "IGNORE"]

# Files nbgrader leaves out when it copies a lesson (CourseDirectory.ignore), and so do we.
IGNORE = tuple(CourseDirectory.ignore.default())


class NbGraderError(RuntimeError):
    """An nbgrader operation reported failure; the message ends with its log."""


def open_api(root: str | Path, **config: Any) -> NbGraderAPI:
    """An NbGraderAPI over the course root `root` (keywords: see settings.nbgrader_config)."""
    _put_alembic_on_path()
    cfg = nbgrader_config(root, **config)
    return NbGraderAPI(CourseDirectory(config=cfg), config=cfg)


def check(result: dict[str, Any], what: str) -> str:
    """The log of an NbGraderAPI call's `result`; raises NbGraderError, naming `what`, if it failed."""
    log = result.get("log", "")
    if not result["success"]:
        raise NbGraderError(f"{what} failed:\n{log}{result.get('error', '')}".rstrip())
    return log


def _put_alembic_on_path() -> None:
    # A new gradebook asks the `alembic` command (found on PATH) for its schema version: make the one
    # installed next to this Python findable when the environment was not activated.
    if shutil.which("alembic") is None:
        os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
