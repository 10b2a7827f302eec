"""`python launch.py` with no verb serves the app (the `ui` verb), and stops cleanly on SIGTERM."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from jobs.lock import dispatcher_pid
from jobs.processes import free_port
from tests.jobs.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_launch_without_a_verb_serves_the_app_and_stops_on_sigterm(tmp_path):
    port, home = free_port(), tmp_path / "home"
    process = subprocess.Popen([sys.executable, "launch.py", "--home", str(home), "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read() -> None:
        for line in process.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("MoTE Studio at" in line for line in lines), 90, what="the app to start")
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert response.status_code == 200 and "MoTE Studio" in response.text
        assert dispatcher_pid(home) == process.pid  # the app process runs the job queue
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    out = "".join(lines)
    assert process.returncode == 0, out
    assert f"MoTE Studio at http://127.0.0.1:{port}/" in out and "MoTE Studio stopped" in out
    assert dispatcher_pid(home) is None
