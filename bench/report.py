"""Run every bench script at its documented settings and write docs/figures.md from what they measured.

    python bench/report.py                      # every bench, documented settings (tens of minutes on 2 cores)
    python bench/report.py --only bench_experts # one bench; the other sections of the file are kept
    python bench/report.py --quick --only bench_expert_layouts   # small settings: a smoke check

Each bench runs in its own process (its printed output passes through) and writes its JSON; the
figures, their 95% intervals and the files they depend on go into the file with the date, the
commit and the machine. Verdicts are computed from the intervals when the file is rendered. A bench
that fails keeps its previous section (tests/test_figures_fresh.py then says whether it is stale)
and makes the command exit non-zero.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.figures_doc import BenchResult, CommitStamp, Comparison, Figure, Goal, Machine, parse, render  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "figures.md"
REPORTED_CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def goals_of(module: str) -> dict[str, Goal]:
    """A bench module's GOALS ({figure: (op, target)}), the one place each goal is written."""
    declared = getattr(importlib.import_module(module), "GOALS", {})
    return {name: Goal(Comparison(op), float(target)) for name, (op, target) in declared.items()}


def read_experts(data: dict) -> tuple[Figure, ...]:
    from bench.bench_experts import RATIOS

    goals, figures = goals_of("bench.bench_experts"), []
    for model, found in data["models"].items():
        for name, value in found["figures"].items():
            interval = found["intervals_95"].get(name)
            repeats = found["epoch_repeats"] if RATIOS.get(name, ("",))[0] == "epoch" else found["repeats"]
            figures.append(Figure(f"{model}.{name}", value, tuple(interval) if interval else None,
                                  repeats if interval else 1, goals.get(name)))
    return tuple(figures)


def read_layouts(data: dict) -> tuple[Figure, ...]:
    intervals, repeats = data["intervals_95"], data["settings"]["repeats"]
    return tuple(Figure(name, value, tuple(intervals[name]), repeats) for name, value in data["figures"].items())


def read_responsiveness(data: dict) -> tuple[Figure, ...]:
    goals = goals_of("bench.bench_responsiveness")
    return tuple(Figure(name, found["value"], tuple(found["interval_95"]), len(found["ratios"]), goals.get(name))
                 for name, found in data["figures"].items())


def read_flat(names: Callable[[dict], list[str]], module: str) -> Callable[[dict], tuple[Figure, ...]]:
    """For benches that measure once and write {figure: value}: no interval, so no verdict but inconclusive."""
    def read(data: dict) -> tuple[Figure, ...]:
        goals, intervals = goals_of(module), data.get("intervals_95", {})
        return tuple(Figure(name, data[name], tuple(intervals[name]) if name in intervals else None,
                            data.get("repeats", 1), goals.get(name)) for name in names(data))
    return read


def read_evaluation(data: dict) -> tuple[Figure, ...]:
    """Per-subject speeds measured once (no interval), then the paired MoTE-vs-base ratios with
    their intervals, repeats and the goal the bench wrote beside each (e.g. ">= 0.8")."""
    once = tuple(Figure(name, data[name]) for name in EVALUATION_FIGURES if name in data)
    paired = []
    for name, found in data.get("paired_figures", {}).items():
        op, _, target = found.get("goal", "").partition(" ")
        goal = Goal(Comparison(op), float(target)) if target else None
        paired.append(Figure(name, found["value"], tuple(found["interval_95"]), len(found["ratios"]), goal))
    return once + tuple(paired)


GENERATION_FIGURES = ["batched_vs_sequential", "batched_vs_sequential_small", "defaults_vs_plain",
                      "batched_chains_per_second", "sequential_chains_per_second", "batched_seconds", "sequential_seconds"]
EVALUATION_FIGURES = [f"{subject}_{name}" for subject in ("base", "mote") for name in
                      ("batched_vs_sequential", "batched_answers_per_second", "sequential_answers_per_second",
                       "identical_answers")]


@dataclass(frozen=True)
class BenchSpec:
    """A bench script, its documented and quick settings, the files its figures depend on, its JSON reader."""

    name: str
    documented_args: tuple[str, ...]
    quick_args: tuple[str, ...]
    depends_on: tuple[str, ...]
    read: Callable[[dict], tuple[Figure, ...]]

    @property
    def script(self) -> str:
        return f"bench/{self.name}.py"


BENCHES = (
    BenchSpec("bench_experts", (), ("--quick", "--models", "tiny"),
              ("bench/bench_experts.py", "core/experts/layer.py", "core/experts/routing.py", "core/experts/token_rows.py",
               "core/experts/model.py", "core/training/loop.py", "core/data/dataset.py",
               "core/decoding/chain_programs.py", "core/decoding/scheduler.py", "core/decoding/kv_rows.py"),
              read_experts),
    BenchSpec("bench_expert_layouts", (), ("--layers", "1", "--repeats", "5"),
              ("bench/bench_expert_layouts.py", "core/experts/layer.py", "core/experts/routing.py"), read_layouts),
    BenchSpec("bench_generation", (), ("--questions", "4", "--batch-size", "2", "--repeats", "1"),
              ("bench/bench_generation.py", "core/synthesis/pipeline.py", "core/synthesis/generators.py",
               "core/synthesis/checkers.py", "core/decoding/completions.py", "core/decoding/scheduler.py",
               "core/decoding/kv_rows.py", "core/decoding/sampling.py", "core/decoding/label_scores.py",
               "core/synthesis/prompts.py", "assets/prompts"),
              read_flat(lambda data: [name for name in GENERATION_FIGURES if name in data], "bench.bench_generation")),
    BenchSpec("bench_evaluation", (), ("--prompts", "2", "--batch-size", "2", "--max-stage-tokens", "4"),
              ("bench/bench_evaluation.py", "core/evaluation/runner.py", "core/decoding/subjects.py",
               "core/decoding/chain_programs.py", "core/decoding/scheduler.py", "core/decoding/kv_rows.py",
               "core/experts/layer.py", "core/experts/routing.py"),
              read_evaluation),
    BenchSpec("bench_responsiveness", (), ("--repeats", "1", "--calls", "2", "--settle", "0.2"),
              ("bench/bench_responsiveness.py", "app", "jobs", "launch.py", "core/training/loop.py"),
              read_responsiveness),
)


def commit_stamp(repo: Path = ROOT) -> CommitStamp:
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return CommitStamp(None, False)
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True)
    return CommitStamp(head.stdout.strip(), bool(status.stdout.strip()))


def this_machine() -> Machine:
    model, flags = "unknown CPU", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return Machine(os.cpu_count() or 1, model, tuple(f for f in REPORTED_CPU_FLAGS if f in flags),
                   torch.backends.cpu.get_cpu_capability(), gpu)


def run_bench(spec: BenchSpec, quick: bool, folder: Path) -> BenchResult:
    """Run one bench script in its own process and read its JSON back."""
    out = folder / f"{spec.name}.json"
    args = [spec.script, *(spec.quick_args if quick else spec.documented_args)]
    print(f"== {spec.name}: python {shlex.join(args)}", flush=True)
    stamp, started = commit_stamp(), time.perf_counter()
    subprocess.run([sys.executable, *args, "--out", str(out)], cwd=ROOT, check=True)
    seconds = time.perf_counter() - started
    return BenchResult(bench=spec.name, command=f"python {shlex.join(args)}",
                       date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                       commit=stamp, machine=this_machine(), quick=quick, seconds=seconds,
                       depends_on=spec.depends_on, figures=spec.read(json.loads(out.read_text(encoding="utf-8"))))


def merged(previous: list[BenchResult], new: list[BenchResult]) -> list[BenchResult]:
    """Previous results with the benches run now replaced, in BENCHES order."""
    by_name = {r.bench: r for r in previous} | {r.bench: r for r in new}
    order = [s.name for s in BENCHES]
    return sorted(by_name.values(), key=lambda r: order.index(r.bench) if r.bench in order else len(order))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = [s.name for s in BENCHES]
    parser.add_argument("--only", action="append", choices=names, help="run this bench only (repeatable)")
    parser.add_argument("--quick", action="store_true", help="small settings, a smoke check; marks the file not for citing")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default {DEFAULT_OUTPUT.relative_to(ROOT)}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [s for s in BENCHES if not args.only or s.name in args.only]
    previous = parse(args.output.read_text(encoding="utf-8")) if args.output.exists() else []
    results, failed = [], []
    with tempfile.TemporaryDirectory(prefix="mote-figures-") as folder:
        for spec in chosen:
            try:
                results.append(run_bench(spec, args.quick, Path(folder)))
            except subprocess.CalledProcessError as error:
                failed.append(spec.name)
                print(f"{spec.name} failed (exit {error.returncode}); its previous figures are kept", file=sys.stderr)
    if results:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(render(merged(previous, results)), encoding="utf-8")
        print(f"wrote {args.output}")
    for result in results:
        for figure in result.figures:
            if figure.goal is not None:
                print(f"{result.bench}.{figure.name}: {figure.value:.3f} (goal {figure.goal}): {figure.verdict}")
    if failed:
        print(f"failed: {', '.join(failed)}; see their output above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
