"""Helpers for `make test-latest`, the drift check: the course tested against the newest releases.

    python requirements/drift.py uncapped         pyproject's requirements (runtime + dev), upper bounds dropped
    python requirements/drift.py report FREEZE    what a `pip freeze` output has that the lock file does not

`make test-latest` installs the newest releases that pyproject's ranges allow (what a student installing today
gets); with UNCAPPED=1 it installs the newest releases, full stop (what the next range bump will bring).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)")


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def uncapped(req: Requirement) -> str:
    """`req` without its upper bounds (<, <=, ~=, ==X.*): torch>=2.3,<2.15 -> torch>=2.3."""
    kept = [s for s in req.specifier if s.operator in (">=", ">", "!=")]
    return f"{req.name}{SpecifierSet(','.join(str(s) for s in kept))}"


def pins(text: str) -> dict[str, str]:
    return {canonicalize_name(m.group(1)): m.group(2) for m in map(PIN.match, text.splitlines()) if m}


def report(freeze: Path) -> list[str]:
    """One line per package whose installed version differs from the lock file; direct requirements first."""
    locked = pins((ROOT / "requirements/constraints.txt").read_text())
    installed = pins(freeze.read_text())
    direct = {canonicalize_name(r.name): r for r in requirements()}
    lines = []
    for name in sorted(installed, key=lambda n: (n not in direct, n)):
        old, new = locked.get(name, "not locked"), installed[name]
        if old == new:
            continue
        note = ""
        if name in direct and not direct[name].specifier.contains(new, prereleases=True):
            note = f"  (outside pyproject's {direct[name].specifier}: the range needs a bump once the tests pass)"
        lines.append(f"{'*' if name in direct else ' '} {name}: {old} -> {new}{note}")
    return lines


def main(argv: list[str]) -> int:
    if argv[:1] == ["uncapped"] and len(argv) == 1:
        print("\n".join(uncapped(r) for r in requirements()))
        return 0
    if argv[:1] == ["report"] and len(argv) == 2:
        lines = report(Path(argv[1]))
        print("versions that differ from requirements/constraints.txt (* = a direct requirement):")
        print("\n".join(lines) if lines else "  none: the newest releases are the locked ones")
        return 0
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
