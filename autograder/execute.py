"""How a student's notebook is executed while grading: sandboxed, bounded, and surviving a dead kernel.

nbgrader's autograde runs each notebook through an `Execute` preprocessor; the course config
(`autograder.settings`) swaps in `GradingExecute`, which

- starts the kernel in the sandbox (autograder.sandbox) unless told `sandbox = False` (--unsafe);
- gives each cell `timeout` seconds (then interrupts it) and the whole notebook `notebook_timeout` seconds
  (then the remaining cells fail with the reason);
- when the kernel dies (os._exit, a segfault, out of memory, CPU limit) or stops answering (a cell that ignores
  the interrupt), records the reason as that cell's error, starts a fresh kernel, silently replays the cells
  that ran fine before it (so definitions exist again), and goes on with the next cell: a dead kernel costs
  only the cells it took down;
- keeps at most `max_output_chars` of output per cell (a note says what was dropped).

What happened is listed in `resources["grading_events"]` and in `.NAME.grading.json` beside the notebook.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from time import monotonic
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Dict, Integer, Unicode

from . import sandbox

__all__ = ["GradingExecute", "KernelLost"]

MAX_RESTARTS = 8


class KernelLost(Exception):
    """The kernel is gone or unusable; the message says why."""


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class GradingExecute(Execute):
    """nbgrader's `Execute`, sandboxed and robust (see the module docstring)."""

    kernel_env = Dict(
        value_trait=Unicode(),
        default_value={},
        help="Environment variables set in the grading kernel, on top of the grader's own environment.",
    ).tag(config=True)
    sandbox = Bool(True, help="Run the kernel in the sandbox (autograder.sandbox).").tag(config=True)
    limits = Dict(default_value={}, help="autograder.sandbox.Limits fields to override.").tag(config=True)
    notebook_timeout = Integer(900, help="Wall-clock seconds for the whole notebook.").tag(config=True)
    max_output_chars = Integer(1_000_000, help="Output characters kept per cell.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._events: list[dict] = []
        self._truncated: set[int] = set()
        self._used: dict[int, tuple] = {}
        self._ok_cells: list[int] = []
        deadline = monotonic() + self.notebook_timeout
        index, restarts = 0, 0
        cells = self.nb.cells
        while index < len(cells):
            replay = list(self._ok_cells)
            try:
                with self._kernel():
                    try:
                        self._kernel_info()
                    except KernelLost as err:
                        raise _NoKernel(str(err)) from err
                    for i in replay:  # rebuild the state the lost kernel had, outputs discarded
                        original = cells[i]
                        try:
                            self._run(copy.deepcopy(original), i, deadline, record=False)
                        finally:
                            cells[i] = original  # nbclient stores the cell it ran back into the notebook
                    while index < len(cells):
                        self._run(cells[index], index, deadline, record=True)
                        index += 1
            except _NoKernel as err:
                self._fail_rest(index, str(err))
                break
            except KernelLost as lost:
                cell = cells[index] if index < len(cells) else None
                if cell is not None and cell.cell_type == "code":
                    cell.setdefault("outputs", []).append(_error("KernelDied", str(lost)))
                self._events.append({"cell": self._label(index), "event": "kernel lost", "reason": str(lost)})
                index += 1
                restarts += 1
                if restarts > MAX_RESTARTS or monotonic() > deadline:
                    self._fail_rest(index, "the notebook was stopped: its kernel died too often or ran out of time")
                    break
            except _OutOfTime:
                self._fail_rest(index, f"the notebook ran past its {self.notebook_timeout} s budget")
                break
        self.set_widgets_metadata()
        self.resources["grading_events"] = self._events
        where, name = self.resources.get("metadata", {}).get("path"), self.resources.get("unique_key")
        if where and name:  # for the grading worker (nbgrader clears the notebook's metadata afterwards)
            (Path(where) / f".{name}.grading.json").write_text(json.dumps(self._events))
        return self.nb, self.resources

    def _fail_rest(self, start: int, reason: str) -> None:
        for i in range(start, len(self.nb.cells)):
            cell = self.nb.cells[i]
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [_error("NotRun", reason)]
        self._events.append({"cell": self._label(start), "event": "stopped", "reason": reason})

    def _label(self, index: int) -> str:
        """How events name a cell: its nbgrader grade_id, else its position."""
        if index < len(self.nb.cells):
            gid = (self.nb.cells[index].get("metadata", {}).get("nbgrader") or {}).get("grade_id")
            if gid:
                return gid
        return f"#{index}"

    def _kernel_info(self) -> None:
        try:
            info = self.wait_for_reply(self.kc.kernel_info())
        except Exception as err:
            raise KernelLost(f"the kernel did not answer at start: {err}") from err
        if info is None:
            raise KernelLost("the kernel did not answer at start")
        self.nb.metadata["language_info"] = info["content"]["language_info"]

    def _run(self, cell: NotebookNode, index: int, deadline: float, record: bool) -> None:
        if cell.cell_type != "code" or not cell.source.strip():
            return
        left = deadline - monotonic()
        if left <= 0:
            raise _OutOfTime()
        saved = self.timeout
        self.timeout = max(1, int(min(self.timeout or left, left)))
        try:
            self.execute_cell(cell, index, store_history=record)
        except DeadKernelError as err:
            raise KernelLost(self._death_reason(err)) from err
        except CellTimeoutError as err:  # the interrupt did not stop it (SIGINT ignored, or stuck in C)
            reason = f"the cell did not stop when interrupted after {self.timeout} s ({err})"
            raise KernelLost(reason.split("\n")[0]) from err
        finally:
            self.timeout = saved
        if any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", [])):
            event = {"cell": self._label(index), "event": "timeout", "reason": f"interrupted after {self.timeout} s"}
            self._events.append(event)
            if not self._responsive():
                raise KernelLost(f"the kernel stopped answering after the cell was interrupted ({self.timeout} s)")
        if record and not any(o.output_type == "error" for o in cell.outputs):
            self._ok_cells.append(index)
        if not record:
            cell.outputs = []

    def _responsive(self) -> bool:
        try:
            return self.wait_for_reply(self.kc.kernel_info()) is not None
        except Exception:
            return False

    def _death_reason(self, err: Exception) -> str:
        code = None
        try:
            proc = getattr(getattr(self.km, "provisioner", None), "process", None)
            code = proc.poll() if proc is not None else None
        except Exception:
            pass
        reasons = {-9: "killed (out of memory or a limit)", -11: "segmentation fault", -24: "CPU time limit"}
        how = reasons.get(code, f"exit status {code}") if code is not None else str(err)
        return f"the kernel died while running this cell: {how}"

    def output(self, outs, msg, display_id, cell_index):
        """Keep at most max_output_chars of a cell's outputs, then one note."""
        key = id(outs)
        if self._used.get(key, (None, 0))[0] is not outs:
            self._used[key] = (outs, 0)
        content = msg.get("content", {})
        size = len(str(content.get("text", ""))) + len(str(content.get("data", ""))) + len(str(content.get("traceback", "")))
        used = self._used[key][1] + size
        self._used[key] = (outs, used)
        if used > self.max_output_chars and msg.get("msg_type") != "error":  # errors always reach the grade
            if key not in self._truncated:
                self._truncated.add(key)
                note = f"[grader: output beyond {self.max_output_chars} characters dropped]\n"
                outs.append(NotebookNode(output_type="stream", name="stdout", text=note))
                self._events.append({"cell": self._label(cell_index), "event": "output truncated", "reason": note.strip()})
            return None
        return super().output(outs, msg, display_id, cell_index)

    # -- kernels ------------------------------------------------------------------------------------
    def _kernel(self):
        return _KernelScope(self)

    def create_kernel_manager(self):
        if not self.sandbox:
            self.km = self.kernel_manager_class(kernel_name="python3", config=self.config)
            return self.km
        self._box_root = Path(tempfile.mkdtemp(prefix="gm-kernel-"))
        work = self._box_root / "home"
        work.mkdir()
        source = Path(self.resources.get("metadata", {}).get("path") or ".")
        for nb in source.glob("*.ipynb"):  # the submission, and nothing else
            shutil.copyfile(nb, work / nb.name)
        limits = sandbox.Limits.from_dict({**sandbox.Limits().__dict__, **self.limits})
        env = {**self.kernel_env, "GMLIB_CACHE": "/tmp/gmlib-cache"}
        kernels, self._box_spec = sandbox.make_kernel(self._box_root, work, limits, env)
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
        self.km = AsyncKernelManager(
            kernel_name=sandbox.KERNEL_NAME,
            kernel_spec_manager=ksm,
            transport="ipc",
            ip=str(Path(self._box_spec.socket_dir) / "kernel"),
            config=self.config,
        )
        return self.km

    def start_new_kernel(self, **kwargs: Any) -> None:
        env = dict(kwargs.pop("env", None) or os.environ)
        env.update(self.kernel_env)
        if self.sandbox:
            kwargs.pop("cwd", None)
        super().start_new_kernel(env=env, **kwargs)

    def _drop_kernel(self) -> None:
        try:
            if self.km is not None:
                self._cleanup_kernel()
        except Exception:
            pass
        self.km, self.kc = None, None
        spec = getattr(self, "_box_spec", None)
        if spec is not None:
            sandbox.cleanup_kernel(spec)
            shutil.rmtree(self._box_root, ignore_errors=True)
            self._box_spec = None


class _OutOfTime(Exception):
    pass


class _NoKernel(Exception):
    """Not even a fresh kernel starts: the rest of the notebook cannot run."""


class _KernelScope:
    """A fresh kernel for a stretch of cells; always shut down (and its sandbox removed) afterwards."""

    def __init__(self, ex: GradingExecute):
        self.ex = ex

    def __enter__(self):
        ex = self.ex
        ex.km, ex.kc = None, None
        try:
            ex.km = ex.create_kernel_manager()
            ex.start_new_kernel()
            ex.start_new_kernel_client()
        except Exception as err:
            ex._drop_kernel()
            raise _NoKernel(f"the grading kernel could not be started: {type(err).__name__}: {err}") from err
        return ex

    def __exit__(self, *exc):
        self.ex._drop_kernel()
        return False
