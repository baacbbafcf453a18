"""A JupyterLab server on a copy of course/, and helpers that drive it in a browser the way a student would.

The server is private to the test: loopback only, a random token, a free port, its own Jupyter config,
runtime, data and settings folders, an empty gmlib cache and FAST mode. nbgrader's instructor extensions are
switched off in that private config by binder/student-mode.sh, the script Binder and `make setup` use.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# what a broken widget shows instead of the widget (ipywidgets front end, JupyterLab's widget manager)
WIDGET_ERRORS = ["Error displaying widget", "model not found", "Failed to load model class"]
# a widget's text form, which JupyterLab shows when no widget front end renders it: "LatentExplorer(children=..."
WIDGET_REPR = re.compile(r"^[A-Z]\w*\((children|value|layout)=")

# JupyterLab settings for a predictable page: every cell in the DOM, no news or update pop-ups
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"checkForUpdates": False,
                                                                        "fetchNews": "false"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable: $GM_CHROMIUM, else the first on PATH."""
    if os.environ.get("GM_CHROMIUM"):
        return os.environ["GM_CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class LabServer:
    """`jupyter lab` serving `root` (a copy of course/) with private Jupyter folders under `home`."""

    def __init__(self, root: Path, home: Path):
        self.root, self.home = root, home
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "jupyter-lab.log"
        self.proc: subprocess.Popen | None = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "GMLIB_"))}
        dirs = {name: self.home / name for name in ("config", "runtime", "data", "settings", "workspaces",
                                                       "ipython", "gmlib-cache")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        env.update(
            JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            JUPYTER_DATA_DIR=str(dirs["data"]), JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
            JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]), IPYTHONDIR=str(dirs["ipython"]),
            GMLIB_CACHE=str(dirs["gmlib-cache"]), GMLIB_FAST="1",
            OMP_NUM_THREADS="1",  # CI's two cores are shared with the other test workers
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        )
        return env

    def start(self, timeout: float = 60.0) -> LabServer:
        env = self.environment()
        for name, settings in LAB_SETTINGS.items():
            path = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(settings))
        # the student view: the script Binder and `make setup` run, here at the private config's level
        subprocess.run([str(ROOT / "binder/student-mode.sh"), str(BIN / "jupyter")], env=env | {"GM_JUPYTER_LEVEL": "user"},
                       check=True, capture_output=True, text=True)
        args = [str(BIN / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                "--port-retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
                "--LabApp.expose_app_in_browser=True", "--ServerApp.open_browser=False"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--allow-root")
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(args, cwd=self.root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s:\n{self.log_text()}")

    def api(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.url}/api/{path}?token={self.token}", timeout=10) as r:
            return json.loads(r.read())

    def memory_mb(self, kernel_id: str | None = None) -> dict[str, float]:
        """Peak resident memory (VmHWM, MB) of the server and of each process under it (the kernels), from /proc;
        with `kernel_id`, of the server and that kernel only."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                pid, rest = stat.read_text().split(" (", 1)
                children.setdefault(int(rest.rsplit(") ", 1)[1].split()[1]), []).append(int(pid))
            except (OSError, ValueError, IndexError):
                continue  # a process that ended meanwhile
        peaks, todo = {}, [self.proc.pid]
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            hwm = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
            role = "kernel" if b"ipykernel_launcher" in cmd else "server" if pid == self.proc.pid else "other"
            if kernel_id and role != "server" and not any(kernel_id.encode() in part for part in cmd):
                continue
            if hwm:
                peaks[f"{role} {pid}"] = round(int(hwm[0]) / 1024, 1)
        return peaks

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # jupyter shuts its kernels down on SIGTERM
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()


# -- the page ---------------------------------------------------------------------------------------------

_NOTEBOOK = "window.jupyterapp && window.jupyterapp.shell.currentWidget"
_STATE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.content.model || !w.sessionContext) return null;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  const cells = [];
  for (const c of w.content.model.cells) {
    const nbgrader = c.getMetadata('nbgrader') || {};
    cells.push({type: c.type, n: c.type === 'code' ? c.executionCount : null, grade_id: nbgrader.grade_id || null,
                source: c.sharedModel.getSource().slice(0, 200),
                errors: c.type === 'code' ? c.outputs.toJSON().filter(o => o.output_type === 'error')
                                              .map(o => o.ename + ': ' + o.evalue) : []});
  }
  const pending = w.content.widgets.filter(c => c.model.type === 'code' && c.promptNode
                                                 && c.promptNode.textContent.includes('*')).length;
  return {path: w.context.path, kernel: k ? k.connectionStatus + '/' + k.status : 'none', dirty: w.context.model.dirty,
          cells, pending};
}"""


class Lab:
    """A JupyterLab page driven like a student: menus, keyboard, the mouse on widgets."""

    def __init__(self, page, server: LabServer, artifacts: Path, workspace: str = "test"):
        self.page, self.server, self.artifacts, self.workspace = page, server, artifacts, workspace
        self.path: str | None = None

    def open(self, path: str) -> Lab:
        """Open notebook `path` (relative to the served folder) alone in a fresh workspace; wait for its kernel."""
        self.path = path
        self.page.goto(f"{self.server.url}/lab/workspaces/{self.workspace}/tree/{path}?reset&token={self.server.token}")
        self.wait_idle()
        return self

    def state(self) -> dict:
        return self.page.evaluate(_STATE) or {}

    def wait_idle(self, timeout: float = 180.0) -> dict:
        """Wait for a connected, idle kernel with no cell queued or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.state()
            if s.get("path") == self.path and s.get("kernel") == "connected/idle" and s.get("pending") == 0:
                return s
            time.sleep(0.25)
        s = self.state()
        raise AssertionError(f"{self.path}: no idle kernel within {timeout:.0f} s: {s.get('path')} {s.get('kernel')}")

    def menu(self, top: str, item: str) -> None:
        self.page.get_by_role("menuitem", name=top, exact=True).click()
        self.page.get_by_role("menuitem", name=item, exact=True).click()

    def menu_items(self, top: str) -> list[str]:
        self.page.get_by_role("menuitem", name=top, exact=True).click()
        items = [t.strip() for t in self.page.locator(".lm-Menu-content .lm-Menu-itemLabel").all_inner_texts()]
        self.page.keyboard.press("Escape")
        return [t for t in items if t]

    def code_errors(self) -> list[str]:
        return [f"cell {i} ({c['source'][:60]!r}): {e}" for i, c in enumerate(self.state()["cells"]) for e in c["errors"]]

    def run_all(self, timeout: float = 400.0) -> float:
        """Run > Run All Cells; wait until every code cell ran; fail on the first error. Returns seconds."""
        self.wait_idle()
        start = time.monotonic()
        self.menu("Run", "Run All Cells")
        while time.monotonic() - start < timeout:
            s = self.state()
            errors = self.code_errors() if s.get("pending") == 0 else []
            if errors:
                raise AssertionError("a cell failed in Run All:\n" + "\n".join(errors))
            code = [c for c in s.get("cells", []) if c["type"] == "code"]
            if code and all(c["n"] is not None for c in code) and s["pending"] == 0 and s["kernel"] == "connected/idle":
                return time.monotonic() - start
            time.sleep(0.5)
        s = self.state()
        ran = sum(c["n"] is not None for c in s.get("cells", []))
        raise AssertionError(f"Run All did not finish within {timeout:.0f} s: {ran} cells ran, kernel {s.get('kernel')}")

    def cell_index(self, *, grade_id: str | None = None, contains: str | None = None) -> int:
        """The index of the first cell with this nbgrader grade_id, or whose source contains `contains`."""
        for i, c in enumerate(self.state()["cells"]):
            if (grade_id and c["grade_id"] == grade_id) or (contains and contains in c["source"]):
                return i
        raise AssertionError(f"no cell with grade_id={grade_id!r} contains={contains!r} in the open notebook")

    def cell(self, index: int):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def select(self, index: int) -> None:
        """Put cell `index` in command mode, selected (a click on its prompt)."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()

    def type_into(self, index: int, text: str) -> None:
        """Replace cell `index`'s source by `text`, typed into its editor (select all, then text input)."""
        editor = self.cell(index).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(text)
        self.page.keyboard.press("Escape")

    def run_cell(self, index: int, timeout: float = 120.0) -> str:
        """Select cell `index`, run it with Ctrl+Enter, wait for it; returns its output text."""
        self.select(index)
        self.page.keyboard.press("Control+Enter")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.state()
            if s["cells"][index]["n"] is not None and s["pending"] == 0 and s["kernel"] == "connected/idle":
                return self.cell(index).locator(".jp-OutputArea").inner_text()
            time.sleep(0.25)
        raise AssertionError(f"cell {index} did not finish within {timeout:.0f} s")

    def save(self) -> None:
        self.page.keyboard.press("Control+s")
        self.page.wait_for_function(f"() => {_NOTEBOOK} && !window.jupyterapp.shell.currentWidget.context.model.dirty")

    def widget_problems(self) -> list[str]:
        text = self.page.locator("body").inner_text()
        return [msg for msg in WIDGET_ERRORS if msg.lower() in text.lower()]

    def shot(self, name: str, locator=None) -> bytes:
        """A screenshot (of `locator`, else the page) saved under the artifacts folder; returns the PNG bytes."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        return (locator or self.page).screenshot(path=str(path))


def widget_output(lab: Lab, slider_label: str, timeout: float = 60.0):
    """The output area of the explorer that has a slider labelled `slider_label` (gmlib's widget labels).
    Fails saying what the page shows instead: a widget error, or a widget's text form (no widget front end)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = lab.page
    label = page.locator("label.widget-label").filter(has_text=_exact(slider_label))
    out = page.locator(".jp-OutputArea-output").filter(has=page.locator(".widget-slider").filter(has=label))
    try:
        out.first.wait_for(state="attached", timeout=timeout * 1000)
    except PlaywrightTimeout:
        texts = page.locator(".jp-OutputArea-output").all_inner_texts()
        as_text = [t.strip()[:120] for t in texts if WIDGET_REPR.match(t.strip())]
        raise AssertionError(
            f"no explorer with a slider {slider_label!r} is displayed after {timeout:.0f} s; widget errors on the "
            f"page: {lab.widget_problems() or 'none'}; outputs showing a widget as text instead of drawing it "
            f"(is the widget front end missing?): {as_text or 'none'}") from None
    return out.first


def slider(output, label: str):
    return output.locator(".widget-slider").filter(has=output.page.locator("label.widget-label").filter(
        has_text=_exact(label))).first


def drag_slider(lab: Lab, widget, to: float) -> tuple[str, str]:
    """Drag a slider's handle with the mouse to fraction `to` of its track; returns (value before, after)."""
    handle = widget.locator("[role=slider]")
    before = handle.get_attribute("aria-valuenow")
    widget.scroll_into_view_if_needed()
    track = widget.locator(".noUi-base").bounding_box()
    box = handle.bounding_box()
    mouse = lab.page.mouse
    mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    mouse.down()
    mouse.move(track["x"] + to * track["width"], track["y"] + track["height"] / 2, steps=8)
    mouse.up()
    lab.page.wait_for_function("([h, v]) => h.getAttribute('aria-valuenow') !== v", arg=[handle.element_handle(), before])
    return before, handle.get_attribute("aria-valuenow")


def settled_src(lab: Lab, image, previous: str | None = None, quiet: float = 1.0, timeout: float = 60.0) -> str:
    """The image's src once it differs from `previous` and has not changed for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = image.get_attribute("src"), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = image.get_attribute("src")
        if now != last:
            last, since = now, time.monotonic()
        elif now != previous and time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"the explorer's image did not change within {timeout:.0f} s")


def _exact(text: str):
    return re.compile(rf"^\s*{re.escape(text)}\s*$")
