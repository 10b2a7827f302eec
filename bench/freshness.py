"""Which figures in docs/figures.md are stale: a file they depend on changed after they were measured.

A bench result is fresh when the last commit touching each of its files (`git log -1 -- FILE`) is
an ancestor of (or equal to) the commit it was measured at (`git merge-base --is-ancestor`), or
when the file at HEAD is byte for byte what it was at that commit (a change made and undone since
does not change what the figure measured).
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.figures_doc import BenchResult


@dataclass(frozen=True)
class StaleBench:
    """A bench whose figures no longer describe the code: the files that changed since, or why unknown."""

    bench: str
    figures: tuple[str, ...]
    measured_at: str | None
    changed_files: tuple[str, ...]
    reason: str

    def __str__(self) -> str:
        names = ", ".join(self.figures)
        return f"{self.bench} ({names}): {self.reason}"


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def is_git_checkout(path: Path) -> bool:
    done = git(path, "rev-parse", "--is-inside-work-tree")
    return done.returncode == 0 and done.stdout.strip() == "true"


def last_change(repo: Path, path: str) -> str | None:
    """The last commit (reachable from HEAD) that touched `path`; None when none did."""
    done = git(repo, "log", "-1", "--format=%H", "--", path)
    if done.returncode != 0:
        raise RuntimeError(f"git log failed in {repo}: {done.stderr.strip()}")
    return done.stdout.strip() or None


def is_ancestor(repo: Path, older: str, newer: str) -> bool | None:
    """True / False, or None when git does not know `newer` (e.g. a shallow clone or a rebased branch)."""
    done = git(repo, "merge-base", "--is-ancestor", older, newer)
    return {0: True, 1: False}.get(done.returncode)


def same_as_at(repo: Path, path: str, commit: str) -> bool:
    """True when `path` at HEAD is what it was at `commit` (`git diff --quiet COMMIT HEAD -- PATH`)."""
    return git(repo, "diff", "--quiet", commit, "HEAD", "--", path).returncode == 0


def stale_result(repo: Path, result: BenchResult) -> StaleBench | None:
    figures = tuple(f.name for f in result.figures)
    measured = result.commit.sha
    if measured is None:
        return StaleBench(result.bench, figures, None, (), "measured outside a git checkout: no commit to compare; "
                          "regenerate with `make figures` in a checkout")
    changed, unknown = [], False
    for path in result.depends_on:
        commit = last_change(repo, path)
        if commit is None:
            continue  # never committed: nothing newer than the figure
        ancestor = is_ancestor(repo, commit, measured)
        unknown |= ancestor is None
        if ancestor is False and not same_as_at(repo, path, measured):
            changed.append(path)
    if unknown:
        return StaleBench(result.bench, figures, measured, tuple(changed),
                          f"measured at commit {measured[:12]}, which this checkout's history does not contain; "
                          f"regenerate with `python bench/report.py --only {result.bench}`")
    if changed:
        return StaleBench(result.bench, figures, measured, tuple(changed),
                          f"measured at commit {measured[:12]}, but {', '.join(changed)} changed since; "
                          f"regenerate with `python bench/report.py --only {result.bench}`")
    return None


def stale_benches(repo: Path, results: list[BenchResult]) -> list[StaleBench]:
    """Every bench in `results` whose figures are older than a change to a file they depend on."""
    return [stale for result in results if (stale := stale_result(repo, result)) is not None]
