"""Cost of MoTE's step-routed experts next to the alternatives, measured side by side in one run.

Prints `model.figure: value` lines and writes figures and raw timings as JSON (--out). Timings
are repeated after a warm-up, variants interleaved repeat by repeat, so each repeat gives a pair
(numerator, denominator) taken seconds apart. A timing figure is the median of the per-repeat
ratios (a paired design: this machine's speed drifts by +-15% between seconds, which cancels
within a pair), with a 95% bootstrap interval of that median; a goal is `met` or `not met` only
when the whole interval is on one side, else `inconclusive`. The JSON also has the ratio of
medians and of minima, and a warning when other processes shared the CPUs.
Models: `tiny` (tests/tiny_model.py) and `smollm2` (bundled SmolLM2-135M-Instruct). Training:
2 full chains fitted to 256 tokens each, rank 16, lora_alpha 32, AdamW lr 2e-5, clip 1.0, fp32.

- mote_vs_lora_step [goal <= 1.10]: MoTE train step (core.training.loop.train_step, with the first
  p_skip=0.2 draw that skips a stage: the 4-D mask path) / the app's `lora` baseline (one LoRA,
  same rank, no skipping) on the same sequences. mote_noskip_vs_lora_step: MoTE on that batch.
- naive_vs_mote_step [>= 2.5]: PEFT-style routing (4 adapters; per step expert: activate
  {expert, shared}, forward the whole sequence, loss on that stage only, backward; one AdamW
  step) / MoTE step.  mote_vs_frozen_base_step (the floor): MoTE step / forward+backward of the
  frozen base model (grad w.r.t. input embeddings only, so backward crosses every layer).
- materialised_vs_onepass_epoch [>= 2.0]: epoch over the chains plus every truncated copy a
  pipeline without step skipping builds / epoch with p_skip masks over the chains only (same
  session, micro-batch 2, all three chain shapes; the two epochs' steps interleaved, each step
  timed, sums per variant); materialised_vs_onepass_tokens for reference.
- mote_vs_base_gen_tps [>= 0.95]: tokens/s of core.decoding.chain_programs.generate_chain (full path, stage
  limits = the median stage lengths of the bundled sample chains, 183 new tokens with markers,
  greedy, fold_experts=True, fold buffers kept between chains as chat and evaluation keep them)
  / HF generate on the base model (KV cache, same prompt and token count);
  mote_unfolded_vs_base_gen_tps: fold_experts=False; short_chain_mote_vs_base_gen_tps: a
  64-token chain (20/20/18), where the three stage switches weigh about three times more.
- mote_vs_lora_peak_mem: peak RSS above the loaded base model while attaching experts and training
  2 steps, MoTE / LoRA, each in a fresh subprocess; *_total: ratio of total peak RSS.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)

import torch  # noqa: E402
import transformers  # noqa: E402

from core.data.chains import Chain, bundled_sample_chains_path, load_chains_jsonl  # noqa: E402
from core.config import DEFAULT_TARGET_MODULES, DataConfig, ExpertConfig, TrainConfig  # noqa: E402
from core.data.dataset import IGNORE_INDEX, Batch, EncodedChain, collate, draw_choices, encode_chain  # noqa: E402
from core.decoding.chain_programs import GenerationSettings, generate_chain  # noqa: E402
from core.experts.model import MoteModel, add_stage_markers, build_mote_model  # noqa: E402
from core.model_source import default_home, load_base_model  # noqa: E402
from core.stages import CHAIN_STAGES, QUESTION_STAGE_ID, ChainShape, Stage  # noqa: E402
from core.training.loop import make_accelerator, make_optimizer, micro_batches, prepare, token_loss_sum, train_step  # noqa: E402

SEQ_LEN, RANK, LORA_ALPHA, LR, P_SKIP, SEED = 256, 16, 32.0, 2e-5, 0.2, 0
STEP_CHAINS = (36, 37)  # two full chains of the bundled sample file
# Median stage lengths of the bundled sample chains in SmolLM2 tokens (+ 6 markers = 183 new tokens),
# and a short chain (+ 6 = 64) where the three stage switches weigh three times more.
STAGE_LIMITS = {"analysis": 60, "guidance": 40, "answer": 77}
SHORT_STAGE_LIMITS = {"analysis": 20, "guidance": 20, "answer": 18}
DEFAULTS = {"tiny": {"repeats": 15, "epoch_repeats": 5}, "smollm2": {"repeats": 10, "epoch_repeats": 6}}
RATIOS = {  # figure: (section, numerator timings, denominator timings)
    "mote_vs_lora_step": ("step", "mote", "lora"),
    "mote_noskip_vs_lora_step": ("step", "mote_noskip", "lora"),
    "naive_vs_mote_step": ("step", "naive_peft", "mote"),
    "mote_vs_frozen_base_step": ("step", "mote", "frozen_base"),
    "materialised_vs_onepass_epoch": ("epoch", "materialised", "onepass"),
    "mote_vs_base_gen_tps": ("generation", "base_s_per_token", "mote_folded_s_per_token"),
    "mote_unfolded_vs_base_gen_tps": ("generation", "base_s_per_token", "mote_unfolded_s_per_token"),
    "short_chain_mote_vs_base_gen_tps": ("generation", "short_base_s_per_token", "short_mote_folded_s_per_token"),
}
GOALS = {"mote_vs_lora_step": ("<=", 1.10), "naive_vs_mote_step": (">=", 2.5),
         "materialised_vs_onepass_epoch": (">=", 2.0), "mote_vs_base_gen_tps": (">=", 0.95)}


def load_base(key: str, args: argparse.Namespace):
    """Fresh (model, tokenizer), fp32, eval mode."""
    if key == "tiny":
        model = transformers.AutoModelForCausalLM.from_pretrained(args.tiny_dir, dtype=torch.float32)
        return model.eval(), transformers.AutoTokenizer.from_pretrained(args.tiny_dir)
    return load_base_model("smollm2-135m-instruct", args.home, say=lambda _: None)


def build_mote(key: str, args: argparse.Namespace, *, single_lora: bool = False, loaded=None) -> MoteModel:
    model, tokenizer = loaded or load_base(key, args)
    torch.manual_seed(SEED)
    extra = {"step_experts": False, "shared_expert": False} if single_lora else {}
    return build_mote_model(model, tokenizer, ExpertConfig(rank=RANK, lora_alpha=LORA_ALPHA, dropout=0.0, **extra))


def build_naive_peft(key: str, args: argparse.Namespace):
    """The PEFT user's model: 4 plain LoRA adapters on the same layers (markers added, no rows)."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_base(key, args)
    add_stage_markers(tokenizer, model)
    torch.manual_seed(SEED)
    config = LoraConfig(r=RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=list(DEFAULT_TARGET_MODULES))
    peft_model = get_peft_model(model, config, adapter_name="analysis")
    for name in ("guidance", "answer", "shared"):
        peft_model.add_adapter(name, config)
    return peft_model


def fit_to_length(sample: EncodedChain, length: int) -> EncodedChain:
    """Same question, markers and stage order; each stage body tiled or cut to reach `length`."""
    spans = sorted(sample.spans.items(), key=lambda item: item[1][0])
    head, tail = sample.input_ids[: spans[0][1][0]], sample.input_ids[spans[-1][1][1]:]
    bodies = [sample.input_ids[start + 1 : end - 1] for _, (start, end) in spans]
    budget = length - len(head) - len(tail) - 2 * len(spans)
    if budget < len(spans):
        raise ValueError(f"the question alone is longer than {length} tokens")
    sizes = [budget * len(b) // sum(map(len, bodies)) for b in bodies]
    sizes[-1] += budget - sum(sizes)
    ids, stages, new_spans = list(head), [QUESTION_STAGE_ID] * len(head), {}
    for (stage, (start, end)), body, size in zip(spans, bodies, sizes):
        piece = [sample.input_ids[start], *(body * (size // len(body) + 1))[:size], sample.input_ids[end - 1]]
        new_spans[stage] = (len(ids), len(ids) + len(piece))
        ids += piece
        stages += [int(stage)] * len(piece)
    ids += tail
    stages += [int(Stage.ANSWER)] * len(tail)
    labels = [tok if st != QUESTION_STAGE_ID else IGNORE_INDEX for tok, st in zip(ids, stages)]
    return EncodedChain(sample.chain_id, ids, labels, stages, new_spans)


def step_batches(mote: MoteModel, chains: list[Chain]) -> tuple[list[EncodedChain], Batch, Batch]:
    """(samples, batch with the first p_skip draw that skips a stage, same batch without skips)."""
    data = DataConfig(max_length=8192)
    samples = [fit_to_length(encode_chain(chains[i], mote.tokenizer, data, mote.marker_ids), SEQ_LEN) for i in STEP_CHAINS]
    draw = lambda index, p_skip: [draw_choices(SEED, 0, index + i, p_skip, s) for i, s in enumerate(samples)]  # noqa: E731
    index = next(i for i in range(0, 10_000, len(samples)) if any(c.skipped for c in draw(i, P_SKIP)))
    pad = mote.tokenizer.pad_token_id
    return samples, collate(samples, draw(index, P_SKIP), pad_id=pad), collate(samples, draw(index, 0.0), pad_id=pad)


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(batch_size=2, micro_batch_size=2, learning_rate=LR, warmup_ratio=0.0, max_grad_norm=1.0,
                       max_steps=100_000, mixed_precision="bf16" if args.bf16 else "no", seed=SEED)


def mote_step_fn(mote: MoteModel, samples: list[EncodedChain], args: argparse.Namespace) -> Callable[[Batch], object]:
    """core.training.loop's own session; returns run(batch) = one optimizer step on that batch."""
    session = prepare(mote, samples, train_config(args), accelerator=args.accelerator)
    return lambda batch: train_step(session, [batch])


def naive_step_fn(peft_model, batch: Batch, args: argparse.Namespace) -> Callable[[], None]:
    params = [p for name, p in peft_model.named_parameters() if "lora_" in name]
    optimizer = make_optimizer(params, train_config(args))  # the same AdamW as the MoTE and LoRA runs
    bf16 = args.bf16
    count = max(1, batch.num_label_tokens)

    def step() -> None:
        peft_model.train()
        for stage in CHAIN_STAGES:
            peft_model.base_model.set_adapter([stage.name.lower(), "shared"])
            labels = batch.labels.masked_fill(batch.stage_ids != int(stage), IGNORE_INDEX)
            with autocast(bf16):
                logits = peft_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                    position_ids=batch.position_ids).logits
            (token_loss_sum(logits, labels) / count).backward()
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def frozen_step_fn(model, batch: Batch, bf16: bool) -> Callable[[], None]:
    model.requires_grad_(False)
    embed, count = model.get_input_embeddings(), max(1, batch.num_label_tokens)

    def step() -> None:
        model.train()
        embeds = embed(batch.input_ids).detach().requires_grad_(True)
        with autocast(bf16):
            logits = model(inputs_embeds=embeds, attention_mask=batch.attention_mask, position_ids=batch.position_ids).logits
        (token_loss_sum(logits, batch.labels) / count).backward()

    return step


def side_by_side(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Warm every variant up, then time them in turn, repeat after repeat (seconds)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def step_timings(key: str, args: argparse.Namespace, chains: list[Chain], ctx: dict) -> dict:
    """Train-step times of MoTE, single LoRA, naive PEFT routing and the frozen base model."""
    mote, lora = build_mote(key, args), build_mote(key, args, single_lora=True)
    samples, skip_batch, plain_batch = step_batches(mote, chains)
    base, base_tokenizer = load_base(key, args)
    add_stage_markers(base_tokenizer, base)
    mote_run, lora_run = mote_step_fn(mote, samples, args), mote_step_fn(lora, samples, args)
    ctx.update(mote=mote, mote_run=mote_run, base=base, question=chains[STEP_CHAINS[0]].question)
    return side_by_side({
        "mote": lambda: mote_run(skip_batch),
        "mote_noskip": lambda: mote_run(plain_batch),
        "lora": lambda: lora_run(plain_batch),
        "naive_peft": naive_step_fn(build_naive_peft(key, args), plain_batch, args),
        "frozen_base": frozen_step_fn(base, skip_batch, args.bf16),
    }, args.repeats)


def truncated_variants(chain: Chain) -> list[Chain]:
    """The chain plus every copy with a subset of its intermediate stages dropped."""
    middle = [s.stage for s in chain.segments if s.stage is not Stage.ANSWER]
    out = []
    for mask in range(2 ** len(middle)):
        dropped = {stage for bit, stage in enumerate(middle) if mask >> bit & 1}
        out.append(Chain(chain.question, [s for s in chain.segments if s.stage not in dropped], id=f"{chain.id}-d{mask}"))
    return out


def interleaved_epochs(run: Callable[[Batch], object], batches: dict[str, list[Batch]], repeats: int) -> dict[str, list[float]]:
    """Per repeat, one epoch of every variant with their steps interleaved evenly (step i of n at
    (i + 0.5) / n), each step timed alone and summed per variant: both epochs of a repeat span the
    same half-minute, so this machine's drift from second to second hits them alike."""
    order = sorted(((i + 0.5) / len(bs), name, b) for name, bs in batches.items() for i, b in enumerate(bs))
    times: dict[str, list[float]] = {name: [] for name in batches}
    for _ in range(repeats):
        spent = dict.fromkeys(batches, 0.0)
        for _, name, batch in order:
            start = time.perf_counter()
            run(batch)
            spent[name] += time.perf_counter() - start
        for name, seconds in spent.items():
            times[name].append(seconds)
    return times


def epoch_timings(args: argparse.Namespace, chains: list[Chain], ctx: dict) -> dict:
    """Epoch times, materialised truncated copies vs one pass with p_skip (batches prebuilt)."""
    mote, train = ctx["mote"], train_config(args)
    picked = [c for shape in ChainShape for c in [c for c in chains if c.shape is shape][: args.chains_per_shape]]
    encode = lambda cs: [encode_chain(c, mote.tokenizer, DataConfig(max_length=8192), mote.marker_ids) for c in cs]  # noqa: E731

    def epoch_batches(samples: list[EncodedChain], p_skip: float) -> list[Batch]:
        data, steps = DataConfig(max_length=8192, p_skip=p_skip), -(-len(samples) // train.batch_size)
        return [b for s in range(steps) for b in micro_batches(samples, s, train, data, pad_id=mote.tokenizer.pad_token_id)]

    batches = {"materialised": epoch_batches(encode([v for c in picked for v in truncated_variants(c)]), 0.0),
               "onepass": epoch_batches(encode(picked), P_SKIP)}
    times = interleaved_epochs(ctx["mote_run"], batches, args.epoch_repeats)
    tokens = {name: sum(b.input_ids.numel() for b in bs) for name, bs in batches.items()}
    return {**times, "chains": [c.id for c in picked], "padded_tokens": tokens,
            "samples": {name: sum(len(b.input_ids) for b in bs) for name, bs in batches.items()},
            "figures": {"materialised_vs_onepass_tokens": tokens["materialised"] / tokens["onepass"]}}


def generation_timings(args: argparse.Namespace, ctx: dict) -> dict:
    """Chain generation (folded and not) and HF generate on the base model, per new token, for a
    chain of typical stage lengths and for a short one (prefix `short_`)."""
    mote, base, question = ctx["mote"], ctx["base"], ctx["question"]
    new: dict[str, int] = {}

    def mote_gen(name: str, limits: dict[str, int], fold: bool) -> Callable[[], None]:
        settings = GenerationSettings(path=ChainShape.FULL, stage_limits=limits, temperature=0.0, fold_experts=fold)

        def run() -> None:
            out = generate_chain(mote, question, settings)
            new["prompt_ids"], new[name] = out.token_ids[: out.prompt_length], len(out.token_ids) - out.prompt_length
        return run

    def base_gen(name: str, like: str) -> Callable[[], None]:  # runs after `like` (dict order): same prompt and count
        def run() -> None:
            prompt = torch.tensor([new["prompt_ids"]])
            out = base.eval().generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new[like],
                                       min_new_tokens=new[like], do_sample=False, pad_token_id=mote.tokenizer.pad_token_id)
            new[name] = out.shape[1] - prompt.shape[1]
        return run

    times = side_by_side({
        "mote_folded": mote_gen("mote_folded", STAGE_LIMITS, True),
        "base": base_gen("base", "mote_folded"),  # right after its pair: drift hits both alike
        "mote_unfolded": mote_gen("mote_unfolded", STAGE_LIMITS, False),
        "short_mote_folded": mote_gen("short_mote_folded", SHORT_STAGE_LIMITS, True),
        "short_base": base_gen("short_base", "short_mote_folded"),
    }, args.repeats)
    start = time.perf_counter()
    mote.router.fold(mote.layout.stage_gate(Stage.ANSWER))  # cost of one stage switch when folding
    fold_seconds = time.perf_counter() - start
    mote.router.unfold()
    new["prompt"] = len(new.pop("prompt_ids"))
    return {**times, **{f"{name}_s_per_token": [t / new[name] for t in ts] for name, ts in times.items()},
            "new_tokens": new, "one_fold_seconds": fold_seconds}


def rss_kib(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def child_peak_memory(args: argparse.Namespace) -> None:
    """--_child mote|lora: load the base model, reset the peak, attach, train 2 steps; print JSON."""
    key, loaded = args.models[0], load_base(args.models[0], args)
    gc.collect()
    baseline, method = rss_kib("VmRSS"), "VmHWM after clear_refs"
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        method = "ru_maxrss (includes loading)"
    mote = build_mote(key, args, single_lora=args._child == "lora", loaded=loaded)
    samples, skip_batch, plain_batch = step_batches(mote, load_chains_jsonl(bundled_sample_chains_path()))
    run = mote_step_fn(mote, samples, args)
    for _ in range(2):
        run(skip_batch if args._child == "mote" else plain_batch)
    peak = rss_kib("VmHWM") if method.startswith("VmHWM") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "method": method}))


def memory_peaks(key: str, args: argparse.Namespace) -> dict:
    runs = {}
    for variant in ("mote", "lora"):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", variant, "--models", key,
               "--home", str(args.home), "--threads", str(args.threads)]
        cmd += (["--tiny-dir", str(args.tiny_dir)] if args.tiny_dir else []) + (["--bf16"] if args.bf16 else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    above = {v: r["peak_kib"] - r["baseline_kib"] for v, r in runs.items()}
    return {**runs, "above_baseline_kib": above, "figures": {
        "mote_vs_lora_peak_mem": above["mote"] / max(1, above["lora"]),
        "mote_vs_lora_peak_mem_total": runs["mote"]["peak_kib"] / runs["lora"]["peak_kib"]}}


def cpu_seconds() -> tuple[float, float]:
    """(CPU-seconds the whole machine was busy, CPU-seconds of this process and its children)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    own = os.times()
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), own.user + own.system + own.children_user + own.children_system


def bench_model(key: str, args: argparse.Namespace, chains: list[Chain]) -> dict:
    args = argparse.Namespace(**{**vars(args), **{k: getattr(args, k) or v for k, v in DEFAULTS[key].items()}})
    (busy0, own0), wall0 = cpu_seconds(), time.perf_counter()
    ctx: dict = {}
    figures, figures_min, figures_of_medians, intervals, raw = {}, {}, {}, {}, {}
    for section, measure in (("step", lambda: step_timings(key, args, chains, ctx)),
                             ("epoch", lambda: epoch_timings(args, chains, ctx)),
                             ("generation", lambda: generation_timings(args, ctx)),
                             ("memory", lambda: memory_peaks(key, args))):
        start = time.perf_counter()
        raw[section] = measure()
        raw[section]["seconds"] = time.perf_counter() - start
        found = raw[section].pop("figures", {})
        for figure, (where, num, den) in RATIOS.items():
            if where == section:
                nums, dens = raw[section][num], raw[section][den]
                pairs = [n / d for n, d in zip(nums, dens)]
                found[figure], intervals[figure] = statistics.median(pairs), median_interval(pairs)
                figures_min[figure] = min(nums) / min(dens)
                figures_of_medians[figure] = statistics.median(nums) / statistics.median(dens)
        for figure, value in found.items():
            print(f"{key}.{figure}: {value:.2f}", flush=True)
        figures.update(found)
    (busy1, own1), wall = cpu_seconds(), time.perf_counter() - wall0
    other = max(0.0, (busy1 - busy0) - (own1 - own0)) / wall  # CPUs kept busy by other processes
    if other > 0.1:
        print(f"warning: other processes kept {other:.2f} CPUs busy during the {key} run; "
              "its timings are unreliable, rerun on a quiet machine", file=sys.stderr, flush=True)
    goals = {}
    for figure, (op, goal) in GOALS.items():
        low, high = intervals[figure]
        section, numerator, _ = RATIOS[figure]
        verdict = goal_verdict(op, goal, low, high, len(raw[section][numerator]))
        goals[figure] = {"goal": f"{op} {goal}", "value": figures[figure], "interval_95": [low, high], "verdict": verdict}
        print(f"{key}.{figure}.goal: {verdict} ({op} {goal}; 95% interval {low:.3f}-{high:.3f})", flush=True)
    return {"figures": figures, "intervals_95": intervals, "figures_ratio_of_medians": figures_of_medians,
            "figures_from_min": figures_min, "goals": goals, "raw": raw, "seconds": wall,
            "other_busy_cpus": other, "repeats": args.repeats, "epoch_repeats": args.epoch_repeats}


def median_interval(values: list[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the median (seeded: the same timings give the same interval)."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


MIN_PAIRS_FOR_VERDICT = 5


def goal_verdict(op: str, goal: float, low: float, high: float, pairs: int) -> str:
    """`met` / `not met` when the whole interval is on one side of the goal, else `inconclusive`
    (always so below MIN_PAIRS_FOR_VERDICT repeats, e.g. --quick: no interval to speak of)."""
    if pairs < MIN_PAIRS_FOR_VERDICT:
        return f"inconclusive (only {pairs} repeat{'s' if pairs != 1 else ''})"
    good, bad = (high <= goal, low > goal) if op == "<=" else (low >= goal, high < goal)
    return "met" if good else "not met" if bad else "inconclusive"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny,smollm2", help="comma-separated: tiny, smollm2")
    parser.add_argument("--home", type=Path, default=None, help="MoTE home with the converted model (default $MOTE_HOME)")
    parser.add_argument("--repeats", type=int, default=None, help=f"timed repeats after 1 warm-up; default {DEFAULTS}")
    parser.add_argument("--epoch-repeats", type=int, default=None, help="timed epochs per variant (see --repeats)")
    parser.add_argument("--chains-per-shape", type=int, default=3, help="chains of each shape in the epoch figure")
    parser.add_argument("--quick", action="store_true", help="1 repeat, 1 epoch, 2 chains per shape")
    parser.add_argument("--bf16", action="store_true", help="torch.autocast CPU bf16 in every training variant (generation stays fp32)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_experts.json")
    parser.add_argument("--tiny-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_child", choices=("mote", "lora"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if unknown := set(args.models) - {"tiny", "smollm2"}:
        parser.error(f"unknown model(s) {sorted(unknown)}: use tiny and/or smollm2")
    if args.quick:
        args.repeats, args.epoch_repeats, args.chains_per_shape = 1, 1, 2
    args.home = (args.home or default_home()).expanduser()
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    args.accelerator = make_accelerator(train_config(args))
    if args._child:
        return child_peak_memory(args)
    started, chains, results = time.perf_counter(), load_chains_jsonl(bundled_sample_chains_path()), {}
    with tempfile.TemporaryDirectory(prefix="mote-bench-tiny-") as tmp:
        if "tiny" in args.models:
            from tests.tiny_model import save_tiny_model_dir

            args.tiny_dir = save_tiny_model_dir(Path(tmp))
        for key in args.models:
            results[key] = bench_model(key, args, chains)
            gc.collect()
    total = time.perf_counter() - started
    print(f"total_seconds: {total:.1f}")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("accelerator", "tiny_dir")}
    settings.update(seq_len=SEQ_LEN, rank=RANK, lora_alpha=LORA_ALPHA, lr=LR, p_skip=P_SKIP, torch=torch.__version__,
                    transformers=transformers.__version__, cpu_capability=torch.backends.cpu.get_cpu_capability())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": settings, "models": results, "total_seconds": total}, indent=2) + "\n")


if __name__ == "__main__":
    main()
