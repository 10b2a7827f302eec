"""The `ui` verb (cli/ui.py): its flags before or after the verb, --auth from text or a file, --share
refused without a login before anything starts, and `python launch.py` with no verb serving the
app and stopping cleanly on SIGTERM."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

import launch
from app.launcher import SHARE_NEEDS_AUTH, ServeOptions
from cli.ui import parse_auth
from jobs.lock import dispatcher_pid
from jobs.processes import free_port
from tests.jobs.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_auth_from_text_or_file_and_share_needs_it(tmp_path):
    assert parse_auth("alice:pw:with:colons") == [("alice", "pw:with:colons")]
    users = tmp_path / "users.txt"
    users.write_text("# who may log in\nalice:one\n\nbob:two\n", encoding="utf-8")
    assert parse_auth(str(users)) == [("alice", "one"), ("bob", "two")]
    with pytest.raises(ValueError, match="expected USER:PASS"):
        parse_auth("alice")
    users.write_text("bob\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1: expected USER:PASS"):
        parse_auth(str(users))
    with pytest.raises(ValueError) as refused:
        ServeOptions(share=True).check()
    assert str(refused.value) == SHARE_NEEDS_AUTH and "--auth USER:PASS" in SHARE_NEEDS_AUTH
    ServeOptions(share=True, auth=[("a", "b")]).check()


def test_ui_is_the_default_verb_and_takes_its_flags_before_or_after_it():
    parser = launch.build_parser()
    bare = parser.parse_args([])
    assert bare.verb is None and (bare.host, bare.port, bare.share, bare.auth) == ("127.0.0.1", 7860, False, None)
    flags = parser.parse_args(["--home", "/h", "--port", "9000", "--share", "--auth", "a:b"])
    assert (flags.port, flags.share, flags.auth, flags.home) == (9000, True, "a:b", "/h")
    after = parser.parse_args(["--home", "/h", "ui", "--host", "0.0.0.0", "--port", "9001"])
    assert (after.verb, after.host, after.port, after.home) == ("ui", "0.0.0.0", 9001, "/h")


def test_share_without_auth_is_refused_before_anything_starts(tmp_path, capsys):
    assert launch.main(["--home", str(tmp_path / "home"), "--share"]) == 2
    assert "needs a login: add --auth USER:PASS" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


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
