"""Why core.experts.layer computes all four experts densely: timed against two sparse layouts.

A MoTE token needs only two experts (its stage's and the shared one), yet StepExpertLinear runs
all four for every token and masks them with the gates: 4x the adapter FLOPs of one LoRA. This
script times one forward+backward of every SmolLM2-shaped projection (7 per layer; a stack of
`--layers`), 512 tokens in two rows of [question+analysis | guidance | answer] segments, for:

- `lora`: StepExpertLinear with one expert (the app's single-LoRA baseline);
- `dense`: StepExpertLinear with MoTE's four experts (what training runs);
- `segments`: a custom autograd function that computes, per contiguous run of one stage, only
  that stage's expert and the shared one (no gathers, a Python loop over the runs);
- `gathered`: tokens gathered by stage, one matmul pair per stage, scattered back.

Both sparse layouts are checked against `dense` (outputs and gradients) before timing. Prints
`name: value` ratios of medians of paired repeats (variants interleaved) and writes JSON.
Random weights: the shapes, not the values, set the cost. Needs no model download.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.bench_experts import median_interval  # noqa: E402
from core.config import QuestionRouting  # noqa: E402
from core.experts.layer import StepExpertLinear  # noqa: E402
from core.experts.routing import ExpertLayout, ExpertRouter  # noqa: E402
from core.stages import QUESTION_STAGE_ID, Stage  # noqa: E402

SMOLLM2_SHAPES = [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576)]
ROW_SEGMENTS = [(QUESTION_STAGE_ID, 40), (Stage.ANALYSIS, 70), (Stage.GUIDANCE, 60), (Stage.ANSWER, 86)]
RANK, LORA_ALPHA = 16, 32.0

Runs = list[tuple[int, int, list[int], torch.Tensor]]  # (start, end, active experts, gate per column)


def stage_ids(rows: int) -> torch.Tensor:
    """(rows, 256) stage ids; question tokens carry QUESTION_STAGE_ID (routed to analysis below)."""
    row = torch.cat([torch.full((n,), int(s)) for s, n in ROW_SEGMENTS])
    return row.repeat(rows, 1)


def contiguous_runs(gates: torch.Tensor) -> Runs:
    """Runs of equal gate vectors along the flattened tokens, with their active experts."""
    flat = gates.reshape(-1, gates.shape[-1])
    change = (flat[1:] != flat[:-1]).any(-1).nonzero().flatten().add(1).tolist()
    bounds = [0, *change, len(flat)]
    runs = []
    for start, end in itertools.pairwise(bounds):
        gate = flat[start]
        active = gate.nonzero().flatten().tolist()
        runs.append((start, end, active, gate[active].repeat_interleave(RANK)))
    return runs


class SegmentedExperts(torch.autograd.Function):
    """result += each run's active experts only; result is the base layer's output (in place)."""

    @staticmethod
    def forward(ctx, x, lora_a, lora_b, result, runs: Runs, scaling: float):
        hidden = []
        for start, end, active, gate in runs:
            a = lora_a[active].reshape(-1, lora_a.shape[-1])
            b = lora_b[:, active].reshape(lora_b.shape[0], -1)
            h = (x[start:end] @ a.T).mul_(gate * scaling)
            result[start:end].addmm_(h, b.T)
            hidden.append(h)
        ctx.mark_dirty(result)
        ctx.save_for_backward(x, lora_a, lora_b)
        ctx.runs, ctx.hidden, ctx.scaling = runs, hidden, scaling
        return result

    @staticmethod
    def backward(ctx, grad):
        x, lora_a, lora_b = ctx.saved_tensors
        grad_x, grad_a, grad_b = torch.zeros_like(x), torch.zeros_like(lora_a), torch.zeros_like(lora_b)
        for (start, end, active, gate), h in zip(ctx.runs, ctx.hidden):
            a = lora_a[active].reshape(-1, lora_a.shape[-1])
            b = lora_b[:, active].reshape(lora_b.shape[0], -1)
            g = grad[start:end]
            grad_h = (g @ b).mul_(gate * ctx.scaling)
            grad_b[:, active] += (g.T @ h).view(lora_b.shape[0], len(active), -1)
            grad_a[active] += (grad_h.T @ x[start:end]).view(len(active), -1, lora_a.shape[-1])
            torch.mm(grad_h, a, out=grad_x[start:end])
        return grad_x, grad_a, grad_b, grad, None, None


def segmented_forward(layer: StepExpertLinear, runs: Runs) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: SegmentedExperts.apply(x, layer.lora_A, layer.lora_B, layer.base_layer(x), runs, layer.scaling)


def gathered_forward(layer: StepExpertLinear, gates: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Group tokens by gate vector (index_select), one matmul pair per group, index_add back."""
    flat = gates.reshape(-1, gates.shape[-1])
    vectors, group = torch.unique(flat, dim=0, return_inverse=True)
    plan = []
    for index, gate in enumerate(vectors):
        active = gate.nonzero().flatten()
        plan.append(((group == index).nonzero().flatten(), active, gate[active].repeat_interleave(RANK)))

    def forward(x: torch.Tensor) -> torch.Tensor:
        result = layer.base_layer(x)
        for rows, active, gate in plan:
            a = layer.lora_A[active].reshape(-1, x.shape[-1])
            b = layer.lora_B[:, active].reshape(result.shape[-1], -1)
            h = (x.index_select(0, rows) @ a.T) * (gate * layer.scaling)
            result.index_add_(0, rows, h @ b.T)  # in place: the base output is not needed for backward
        return result

    return forward


def build_variants(rows: int, layers: int) -> tuple[dict[str, list], list[torch.Tensor], list[torch.Tensor]]:
    """For each variant a list of (forward(x), parameters) per projection; inputs; output grads."""
    stages = stage_ids(rows)
    experts = torch.full((rows,), int(Stage.ANALYSIS))
    mote_layout, lora_layout = ExpertLayout(), ExpertLayout(step_experts=False, shared_expert=False)
    mote_gates = mote_layout.gates(stages, QuestionRouting.RANDOM, experts).reshape(-1, mote_layout.num_experts)
    lora_gates = lora_layout.gates(stages, QuestionRouting.RANDOM, experts).reshape(-1, 1)
    routers = {"mote": ExpertRouter(mote_layout), "lora": ExpertRouter(lora_layout)}
    runs = contiguous_runs(mote_gates)
    variants: dict[str, list] = {"lora": [], "dense": [], "segments": [], "gathered": []}
    shapes = SMOLLM2_SHAPES * layers
    for features_in, features_out in shapes:
        base = nn.Linear(features_in, features_out, bias=False).requires_grad_(False)
        lora = StepExpertLinear(base, router=routers["lora"], rank=RANK, lora_alpha=LORA_ALPHA)
        mote = StepExpertLinear(base, router=routers["mote"], rank=RANK, lora_alpha=LORA_ALPHA)
        with torch.no_grad():
            mote.lora_B.normal_(std=0.02)
        variants["lora"].append((lora, list(lora.parameters())))
        variants["dense"].append((mote, [mote.lora_A, mote.lora_B]))
        variants["segments"].append((segmented_forward(mote, runs), [mote.lora_A, mote.lora_B]))
        variants["gathered"].append((gathered_forward(mote, mote_gates), [mote.lora_A, mote.lora_B]))
    tokens = rows * stages.shape[1]
    inputs = [torch.randn(tokens, i, requires_grad=True) for i, _ in shapes]
    grads = [torch.randn(tokens, o) for _, o in shapes]
    routers["mote"].gates, routers["lora"].gates = mote_gates, lora_gates
    return variants, inputs, grads


def run_variant(layers: list, inputs: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Forward+backward of every projection; returns the gradients (input, then parameters)."""
    out = []
    for (forward, params), x, g in zip(layers, inputs, grads):
        x.grad = None
        for p in params:
            p.grad = None
        forward(x).backward(g)
        out += [x.grad, *(p.grad for p in params if p.grad is not None)]
    return out


def check_equal(variants: dict, inputs: list[torch.Tensor], grads: list[torch.Tensor]) -> dict[str, float]:
    """Largest gradient difference of each sparse layout from dense (relative to dense's scale)."""
    reference = run_variant(variants["dense"][:7], inputs[:7], grads[:7])
    worst = {}
    for name in ("segments", "gathered"):
        got = run_variant(variants[name][:7], inputs[:7], grads[:7])
        worst[name] = max(((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item() for a, b in zip(reference, got))
        if worst[name] > 1e-4:
            raise AssertionError(f"{name} layout differs from dense by {worst[name]:.2e}")
    return worst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=30, help="SmolLM2 has 30")
    parser.add_argument("--rows", type=int, default=2, help="sequences of 256 tokens")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_expert_layouts.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    variants, inputs, grads = build_variants(args.rows, args.layers)
    differences = check_equal(variants, inputs, grads)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for name in variants:
        run_variant(variants[name], inputs, grads)  # warm-up
    for _ in range(args.repeats):
        for name, layers in variants.items():
            start = time.perf_counter()
            run_variant(layers, inputs, grads)
            times[name].append(time.perf_counter() - start)
    figures, intervals = {}, {}
    pairs = [(f"{name}_vs_lora", name, "lora") for name in ("dense", "segments", "gathered")]
    pairs += [(f"{name}_vs_dense", name, "dense") for name in ("segments", "gathered")]
    for figure, numerator, denominator in pairs:
        ratios = [a / b for a, b in zip(times[numerator], times[denominator])]
        figures[figure], intervals[figure] = statistics.median(ratios), median_interval(ratios)
    for name, value in figures.items():
        print(f"{name}: {value:.2f}")
    print("seconds_per_pass: " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in times.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "settings": {"layers": args.layers, "rows": args.rows, "repeats": args.repeats, "threads": args.threads,
                     "rank": RANK, "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()},
        "figures": figures, "intervals_95": intervals, "max_relative_difference_from_dense": differences, "seconds": times}, indent=2) + "\n")


if __name__ == "__main__":
    main()
