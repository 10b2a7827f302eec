"""docs/figures.md must not be older than the code its figures measure (bench/freshness.py)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.figures_doc import BenchResult, CommitStamp, Figure, Machine, parse
from bench.freshness import is_git_checkout, stale_benches

ROOT = Path(__file__).resolve().parent.parent
FIGURES_FILE = ROOT / "docs" / "figures.md"


def test_generated_figures_are_not_older_than_what_they_measure():
    if not is_git_checkout(ROOT):
        pytest.skip("not a git checkout: no history to compare the figures' commit with")
    if not FIGURES_FILE.exists():
        pytest.skip("docs/figures.md does not exist yet: generate it with `make figures` on a quiet machine")
    stale = stale_benches(ROOT, parse(FIGURES_FILE.read_text(encoding="utf-8")))
    assert not stale, "stale figures in docs/figures.md:\n" + "\n".join(f"- {s}" for s in stale)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def commit_file(repo: Path, path: str, text: str) -> str:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", path)
    git(repo, "commit", "-q", "-m", f"change {path}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "test@example.com")
    git(tmp_path, "config", "user.name", "test")
    commit_file(tmp_path, "bench/bench_x.py", "print(1)\n")
    commit_file(tmp_path, "core/layer.py", "x = 1\n")
    return tmp_path


def measured_at(sha: str | None) -> BenchResult:
    return BenchResult(bench="bench_x", command="python bench/bench_x.py", date="2026-01-01 00:00 UTC",
                       commit=CommitStamp(sha, dirty=False), machine=Machine(2, "cpu", (), "AVX2", None),
                       quick=False, seconds=1.0, depends_on=("bench/bench_x.py", "core/layer.py", "core/new.py"),
                       figures=(Figure("x_vs_y", 1.2), Figure("y_vs_z", 0.8)))


def test_figures_are_fresh_until_a_dependency_changes(repo: Path):
    result = measured_at(git(repo, "rev-parse", "HEAD"))
    assert stale_benches(repo, [result]) == []
    commit_file(repo, "docs/figures.md", "the figures file itself, committed after the run\n")
    commit_file(repo, "core/unrelated.py", "y = 2\n")
    assert stale_benches(repo, [result]) == []
    commit_file(repo, "core/layer.py", "x = 2\n")
    [stale] = stale_benches(repo, [result])
    assert stale.changed_files == ("core/layer.py",)
    assert stale.figures == ("x_vs_y", "y_vs_z")
    assert "core/layer.py changed since" in str(stale) and "--only bench_x" in str(stale)


def test_a_change_undone_since_the_run_is_not_stale(repo: Path):
    result = measured_at(git(repo, "rev-parse", "HEAD"))
    commit_file(repo, "core/layer.py", "x = 2\n")
    assert [s.changed_files for s in stale_benches(repo, [result])] == [("core/layer.py",)]
    commit_file(repo, "core/layer.py", "x = 1\n")  # back to what was measured
    assert stale_benches(repo, [result]) == []


def test_a_dependency_added_after_the_run_makes_it_stale(repo: Path):
    result = measured_at(git(repo, "rev-parse", "HEAD"))
    commit_file(repo, "core/new.py", "z = 3\n")
    assert [s.changed_files for s in stale_benches(repo, [result])] == [("core/new.py",)]


def test_a_commit_unknown_to_the_history_is_stale_not_trusted(repo: Path):
    [stale] = stale_benches(repo, [measured_at("0123456789" * 4)])
    assert "does not contain" in stale.reason


def test_figures_measured_outside_a_checkout_are_stale(repo: Path):
    [stale] = stale_benches(repo, [measured_at(None)])
    assert "outside a git checkout" in stale.reason


def test_a_plain_folder_is_not_a_checkout(tmp_path: Path):
    assert not is_git_checkout(tmp_path)
    assert is_git_checkout(ROOT) == (ROOT / ".git").exists()
