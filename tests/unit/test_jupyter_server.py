"""JupyterLab in the set-up: a headless Jupyter server from this environment runs the repo's notebooks.

Starts `jupyter lab` (no browser, loopback only, a random token, a free port) with the interpreter
running the tests, checks through its REST API that the kernel the notebooks name is listed,
starts that kernel through the server, executes notebook 01 cell by cell over the kernel's
websocket (parameters pointed at the tiny test config), and shuts the server down. Every wait
is bounded; the server is stopped in `finally` whatever happens.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jupyterlab  # noqa: F401  (part of the install: a missing one fails here, not skips)
import requests
import websocket

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_receptive_field.ipynb"
START_TIMEOUT_S = 120  # generous: a 2-core CI machine under load
CELL_TIMEOUT_S = 300
STOP_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, url: str, headers: dict, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log_tail = " | ".join(log.read_text().splitlines()[-3:])
            raise AssertionError(
                f"jupyter server exited with status {proc.returncode} before it was ready: {log_tail}"
            )
        try:
            if requests.get(f"{url}/api/status", headers=headers, timeout=5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"jupyter server not ready after {START_TIMEOUT_S} s")


def _execute(ws, code: str) -> list[dict]:
    """Send one execute_request; return the iopub messages of that request once it is idle."""
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "content": {"code": code, "silent": False, "store_history": True, "allow_stdin": False},
                "channel": "shell",
            }
        )
    )
    seen, reply, idle = [], None, False
    deadline = time.monotonic() + CELL_TIMEOUT_S
    while not (reply and idle):
        ws.settimeout(max(1.0, deadline - time.monotonic()))
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["channel"] == "shell" and msg["msg_type"] == "execute_reply":
            reply = msg
        elif msg["channel"] == "iopub":
            seen.append(msg)
            idle = msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
        if time.monotonic() > deadline:
            raise AssertionError(f"cell did not finish in {CELL_TIMEOUT_S} s:\n{code[:200]}")
    errors = [m["content"] for m in seen if m["msg_type"] == "error"]
    assert reply["content"]["status"] == "ok", f"cell failed: {errors or reply['content']}\n{code[:300]}"
    return seen


def _notebook_cells(tmp_path: Path) -> list[str]:
    """Code cells of notebook 01, its parameters cell replaced by the nbmake mock (tiny config)."""
    nb = json.loads(NOTEBOOK.read_text())
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        mock = cell.get("metadata", {}).get("nbmake", {}).get("mock")
        if mock:
            values = {
                k: str((NOTEBOOK.parent / v).resolve()) if k.endswith("_path") else v for k, v in mock.items()
            }
            values["run_dir"] = str(tmp_path / "run")
            cells.append("\n".join(f"{k} = {v!r}" for k, v in values.items()))
        else:
            cells.append("".join(cell["source"]))
    return cells


def test_a_headless_jupyter_server_lists_the_kernel_and_runs_a_repo_notebook(tmp_path):
    nb_kernel = json.loads(NOTEBOOK.read_text())["metadata"]["kernelspec"]["name"]
    port, token = _free_port(), secrets.token_hex(16)
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"token {token}"}
    log_path = tmp_path / "server.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={ROOT / 'notebooks'}", "--allow-root",  # CI containers run as root
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",  # no network
        ],
        cwd=ROOT / "notebooks", stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")},
    )  # fmt: skip
    try:
        _wait_ready(proc, url, headers, log_path)
        specs = requests.get(f"{url}/api/kernelspecs", headers=headers, timeout=30).json()
        assert nb_kernel in specs["kernelspecs"], f"kernel {nb_kernel!r} not in {list(specs['kernelspecs'])}"
        assert requests.get(f"{url}/lab", headers=headers, timeout=30).ok  # JupyterLab itself is served

        kernel = requests.post(
            f"{url}/api/kernels", json={"name": nb_kernel}, headers=headers, timeout=60
        ).json()
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={token}",
            timeout=START_TIMEOUT_S,
        )
        try:
            # The kernel is this environment's interpreter, and it imports this repo.
            out = _execute(ws, "import sys, wavenet_lib; print(sys.prefix); print(wavenet_lib.__file__)")
            printed = "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
            prefix, module = printed.split()
            assert Path(prefix).resolve() == Path(sys.prefix).resolve()
            assert Path(module).resolve().is_relative_to(ROOT)
            for code in _notebook_cells(tmp_path):
                _execute(ws, code)
        finally:
            ws.close()
        figure = tmp_path / "run" / "figures"
        assert any(figure.glob("*.png")), "notebook 01 ran but wrote no figure"
        requests.delete(f"{url}/api/kernels/{kernel['id']}", headers=headers, timeout=30)
        assert requests.post(f"{url}/api/shutdown", headers=headers, timeout=30).status_code in (200, 202)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        log.close()
