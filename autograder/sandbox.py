"""The sandbox a student's kernel runs in while grading, and nothing else.

A sandboxed kernel is started through a kernelspec whose command is this module (`launch`), run by the
grader (root) outside the sandbox. The launcher puts itself into fresh cgroups (memory, pids), then replaces
itself by `prlimit` -> `bwrap` -> `setpriv` -> the ipykernel, so the kernel runs:

- as an unprivileged user (nobody, uid 65534), no new privileges, no supplementary groups;
- in new namespaces (no network, own pids, own hostname and IPC), dying with the grader;
- on a read-only view of the system (/usr, /etc, the Python environment, gmlib) and nothing else of the
  host: the course repository, the gradebook, the solutions and other submissions are simply not there;
- in a private, writable work folder holding only that student's submission, with a private /tmp;
- under limits: memory and process count (cgroups), CPU seconds, address space, file size and open files
  (rlimits); the grader adds a per-cell and a per-notebook wall clock, and caps the output it keeps.

`probe()` says whether this machine can build the sandbox; grading refuses (exit 3) when it cannot, unless
the instructor passes --unsafe.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Limits", "SandboxSpec", "probe", "SandboxUnavailable", "make_kernel", "cleanup_kernel"]

NOBODY = 65534
BWRAP = os.environ.get("GM_BWRAP", "bwrap")  # the bubblewrap binary (a path where it is not on PATH)
KERNEL_NAME = "gm-sandbox"
SANDBOX_HOME = "/home/student"  # the work folder's path inside the sandbox
PKG_ROOT = "/opt/gm"  # gmlib and autograder.expect, read-only, inside the sandbox
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "gm-grade-"
# every namespace but the user one (as root, an unmapped user namespace would stop setpriv from becoming nobody)
UNSHARE = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be built on this machine; the message says what is missing."""


@dataclass
class Limits:
    """Resource limits of one sandboxed kernel (all of its processes together where cgroups allow)."""

    memory_mb: int = 2048  # cgroup memory (the kernel and its children; tmpfs included)
    pids: int = 256  # cgroup pids (processes and threads)
    cpu_s: int = 900  # RLIMIT_CPU per process (SIGXCPU, then SIGKILL)
    address_space_mb: int = 16384  # RLIMIT_AS per process (torch maps a lot of virtual memory)
    file_mb: int = 64  # RLIMIT_FSIZE: largest file the kernel may write
    open_files: int = 256  # RLIMIT_NOFILE
    nproc: int = 4096  # RLIMIT_NPROC for uid nobody (shared by every sandbox on the machine: a backstop)
    tmp_mb: int = 256  # size of the private /tmp

    @classmethod
    def from_dict(cls, data: dict) -> Limits:
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class SandboxSpec:
    """What the launcher needs: written by the grader into a private folder, read by `launch`."""

    work_dir: str  # host folder mounted read-write at SANDBOX_HOME (only the submission in it)
    socket_dir: str  # host folder for the kernel's ipc sockets, mounted at the same path
    limits: dict = field(default_factory=lambda: asdict(Limits()))
    env: dict = field(default_factory=dict)  # extra kernel environment
    binds: list = field(default_factory=list)  # [host, inside] read-only binds (Python, gmlib, ...)
    cgroups: dict = field(default_factory=dict)  # controller -> cgroup folder (created by the grader)
    log_file: str = ""  # the kernel's own stdout/stderr (capped by the file-size limit), outside the sandbox
    python: str = sys.executable


def _python_binds() -> list[list[str]]:
    """Read-only binds that make this Python environment and gmlib importable in the sandbox."""
    import importlib.util

    repo_pkg = Path(importlib.util.find_spec("gmlib").origin).resolve().parent  # without importing torch
    here = Path(__file__).resolve().parent
    binds = []
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        if not prefix.startswith("/usr/"):
            binds.append([prefix, prefix])
    binds.append([str(repo_pkg), f"{PKG_ROOT}/gmlib"])
    # of the grader's package only the module that hidden tests import: not the rest (gradebooks live nearby)
    binds.append([str(here / "expect.py"), f"{PKG_ROOT}/autograder/expect.py"])
    return sorted(binds)


def _cgroup_parent(controller: str) -> Path | None:
    """The folder of this process's cgroup for a v1 `controller`, if it can be written."""
    base = CGROUP_ROOT / controller
    if not (base / "cgroup.procs").exists():
        return None
    own = "/"
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            own = path
    parent = base / own.lstrip("/")
    return parent if parent.is_dir() and os.access(parent, os.W_OK) else None


def _make_cgroups(limits: Limits) -> dict[str, str]:
    made = {}
    settings = {
        "memory": {"memory.limit_in_bytes": limits.memory_mb * 2**20, "memory.swappiness": 0},
        "pids": {"pids.max": limits.pids},
    }
    for controller, values in settings.items():
        parent = _cgroup_parent(controller)
        if parent is None:
            continue
        folder = parent / f"{CGROUP_PREFIX}{uuid.uuid4().hex[:12]}"
        try:
            folder.mkdir()
            for name, value in values.items():
                if (folder / name).exists():
                    (folder / name).write_text(str(value))
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            continue
        made[controller] = str(folder)
    return made


def _remove_cgroup(folder: Path) -> None:
    for _ in range(50):
        procs = [int(p) for p in (folder / "cgroup.procs").read_text().split()] if folder.exists() else []
        for pid in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)


def probe() -> list[str]:
    """What stops this machine from sandboxing kernels ([] when everything needed is there)."""
    problems = []
    for tool in (BWRAP, "prlimit", "setpriv"):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` not found (Debian: apt-get install bubblewrap util-linux)")
    if os.geteuid() != 0:
        problems.append("grading must run as root to switch the kernel to an unprivileged user and set cgroup limits")
    if problems:
        return problems
    try:
        done = subprocess.run(
            [BWRAP, *UNSHARE, "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc",
             "--dev", "/dev", "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             "--no-new-privs", "true"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if done.returncode != 0:
            problems.append(f"bubblewrap cannot make a sandbox here: {done.stderr.strip() or done.returncode}")
    except (OSError, subprocess.TimeoutExpired) as err:
        problems.append(f"bubblewrap cannot make a sandbox here: {err}")
    for controller in ("memory", "pids"):
        if _cgroup_parent(controller) is None:
            problems.append(f"no writable cgroup v1 `{controller}` controller under {CGROUP_ROOT}")
    return problems


def make_kernel(root: Path, work_dir: Path, limits: Limits, env: dict[str, str]) -> tuple[Path, SandboxSpec]:
    """Write a kernelspec (in root/kernels/) whose kernel runs sandboxed in `work_dir`; returns (dir, spec)."""
    socket_dir = Path(tempfile.mkdtemp(prefix="sock-", dir=root))
    os.chmod(socket_dir, 0o777)
    os.chmod(work_dir, 0o777)
    for path in work_dir.rglob("*"):
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
    spec = SandboxSpec(
        work_dir=str(work_dir),
        socket_dir=str(socket_dir),
        limits=asdict(limits),
        env=dict(env),
        binds=_python_binds(),
        cgroups=_make_cgroups(limits),
        log_file=str(root / "kernel.log"),
    )
    spec_path = root / f"spec-{uuid.uuid4().hex[:8]}.json"
    spec_path.write_text(json.dumps(asdict(spec)))
    kernels = root / "kernels" / KERNEL_NAME
    kernels.mkdir(parents=True, exist_ok=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "autograder.sandbox", str(spec_path), "{connection_file}"],
                "display_name": "Python 3 (sandboxed grading)",
                "language": "python",
                "interrupt_mode": "message",
                "env": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            }
        )
    )
    return root / "kernels", spec


def cleanup_kernel(spec: SandboxSpec) -> None:
    """Kill whatever is left in the kernel's cgroups and remove them and its socket folder."""
    for folder in spec.cgroups.values():
        _remove_cgroup(Path(folder))
    shutil.rmtree(spec.socket_dir, ignore_errors=True)


def command(spec: SandboxSpec, connection_file: str) -> list[str]:
    """The command line that runs the kernel for `connection_file` inside the sandbox."""
    lim = Limits.from_dict(spec.limits)
    mb = 2**20
    prlimit = [
        "prlimit", f"--cpu={lim.cpu_s}", f"--as={lim.address_space_mb * mb}", f"--fsize={lim.file_mb * mb}",
        f"--nofile={lim.open_files}", f"--nproc={lim.nproc}", "--core=0", "--",
    ]  # fmt: skip
    bwrap = [BWRAP, *UNSHARE, "--die-with-parent", "--new-session", "--clearenv"]
    for path in ("/usr", "/etc"):
        bwrap += ["--ro-bind", path, path]
    for link in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        target = Path("/") / link
        if target.is_symlink():
            bwrap += ["--symlink", os.readlink(target), f"/{link}"]
        elif target.is_dir():
            bwrap += ["--ro-bind", str(target), f"/{link}"]
    bwrap += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(lim.tmp_mb * mb), "--tmpfs", "/tmp"]
    made = {"/", "/usr", "/etc", "/proc", "/dev", "/tmp"}
    for host, inside in spec.binds:
        for parent in reversed(Path(inside).parents):  # world-readable folders on the way (bwrap copies 0700)
            if str(parent) not in made:
                made.add(str(parent))
                bwrap += ["--perms", "0755", "--dir", str(parent)]
        bwrap += ["--ro-bind", host, inside]
    for host, inside, how in ((spec.work_dir, SANDBOX_HOME, "--bind"), (spec.socket_dir, spec.socket_dir, "--bind"),
                              (connection_file, "/run/gm/kernel.json", "--ro-bind")):
        for parent in reversed(Path(inside).parents):
            if str(parent) not in made:
                made.add(str(parent))
                bwrap += ["--perms", "0755", "--dir", str(parent)]
        bwrap += [how, host, inside]
    bwrap += ["--chdir", SANDBOX_HOME]
    env = {
        "HOME": SANDBOX_HOME,
        "PATH": f"{Path(spec.python).parent}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": PKG_ROOT,
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "IPYTHONDIR": "/tmp/ipython",
        "GMLIB_CACHE": "/tmp/gmlib-cache",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "LANG": "C.UTF-8",
        **spec.env,
    }
    for name, value in env.items():
        bwrap += ["--setenv", name, str(value)]
    setpriv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--no-new-privs", "--"]
    kernel = [spec.python, "-m", "ipykernel_launcher", "-f", "/run/gm/kernel.json"]
    return prlimit + bwrap + ["--"] + setpriv + kernel


def launch(spec_path: str, connection_file: str) -> None:
    """Kernelspec entry point (runs as the grader): join the cgroups, then become the sandboxed kernel."""
    spec = SandboxSpec(**json.loads(Path(spec_path).read_text()))
    os.chmod(connection_file, 0o644)
    for folder in spec.cgroups.values():
        (Path(folder) / "cgroup.procs").write_text(str(os.getpid()))
    if spec.log_file:  # keep the kernel's raw output away from the grader's terminal
        fd = os.open(spec.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    argv = command(spec, connection_file)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: python -m autograder.sandbox SPEC.json CONNECTION_FILE", file=sys.stderr)
        raise SystemExit(2)
    launch(sys.argv[1], sys.argv[2])
