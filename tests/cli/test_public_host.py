"""Issue 19 point 3: the app refuses to listen beyond loopback without a login unless the operator
says --insecure-public, and prints the URLs it really listens on (not Gradio's 'localhost')."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

import launch
from app.exposure import is_loopback_host, listen_urls
from app.launcher import ServeOptions
from jobs.processes import free_port
from tests.jobs.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_a_host_beyond_loopback_without_auth_is_refused_before_anything_starts(tmp_path, capsys, host):
    assert launch.main(["--home", str(tmp_path / "home"), "--host", host]) == 2
    err = capsys.readouterr().err
    assert f"--host {host} makes the app reachable from other machines" in err
    assert "--auth USER:PASS" in err and "--insecure-public" in err  # says how to proceed
    assert not (tmp_path / "home").exists()


def test_loopback_and_logged_in_hosts_are_allowed():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback_host(host)
        ServeOptions(host=host).check()
    ServeOptions(host="0.0.0.0", auth=[("alice", "pw")]).check()
    ServeOptions(host="0.0.0.0", insecure_public=True).check()
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("no-such-host.invalid")


def test_a_wildcard_host_lists_every_interface_address_not_localhost():
    urls = listen_urls("0.0.0.0", 7860)
    assert "http://127.0.0.1:7860/" in urls and all("localhost" not in url for url in urls)
    assert all(":7860/" in url and "[" not in url for url in urls)  # IPv4 only on 0.0.0.0
    assert listen_urls("10.1.2.3", 80) == ["http://10.1.2.3:80/"]
    assert listen_urls("::1", 80) == ["http://[::1]:80/"]


def test_insecure_public_serves_on_every_interface_with_a_warning_and_the_real_urls(tmp_path):
    port, home = free_port(), tmp_path / "home"
    process = subprocess.Popen([sys.executable, "launch.py", "--home", str(home), "--host", "0.0.0.0",
                                "--port", str(port), "--insecure-public"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("MoTE Studio at" in line for line in lines), 90, what="the app to start")
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    out = "".join(lines)
    started = next(line for line in out.splitlines() if line.startswith("MoTE Studio at"))
    assert all(url in started for url in listen_urls("0.0.0.0", port)), out
    assert "localhost" not in started
    assert "WARNING: --insecure-public" in out and "no login" in out
