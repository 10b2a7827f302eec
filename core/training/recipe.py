"""One training run end to end: setup, fit, save — what the CLI demo, jobs and tests call.

Phases, one function each (torchtune / litgpt style): `setup_run` loads the base model and builds
the MoTE (or baseline) model and data; `run_training` fits and exports; `load_trained` brings an
exported run back for chat and evaluation. A run folder holds config.yaml, metrics.jsonl,
checkpoints/ and export/.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from core.data.chains import Chain
from core.config import MoteConfig, resolve_method
from core.data.dataset import EncodedChain, encode_chains, with_helpful_repeats
from core.experts.export import export_mote, load_mote_model, read_manifest
from core.experts.model import MoteModel, build_mote_model
from core.model_source import inference_placement, load_base_model, training_base_dtype
from core.data.atomic_write import write_bytes_atomically
from core.training.checkpoint import latest_checkpoint
from core.progress import Progress, announce, no_progress
from core.training.loop import StepMetricsSink, TrainResult, train_experts
from core.training.quantization import NF4Settings, quantization_for_training, quantized_device_map

Say = Callable[[str], None]
EXPORT_DIR = "export"


@dataclass
class RunSetup:
    """A model ready to train and the encoded data it trains on."""

    config: MoteConfig
    mote: MoteModel
    samples: list[EncodedChain]
    rejected: list[tuple[str, str]]


def setup_run(config: MoteConfig, chains: list[Chain], *, home: Path | None = None, say: Say = print) -> RunSetup:
    """Load the base model, attach experts for the config's method, encode the chains."""
    resolved = resolve_method(config)
    torch.manual_seed(resolved.train.seed)
    base, tokenizer = load_training_base(resolved, home=home, say=say)
    if resolved.train.gradient_checkpointing:
        base.config.use_cache = False
    use_markers = resolved.data.train_on == "chain"
    mote = build_mote_model(base, tokenizer, resolved.experts, use_markers=use_markers)
    samples, rejected = encode_chains(chains, tokenizer, resolved.data, mote.marker_ids)
    for chain_id, reason in rejected:
        say(f"Skipped chain {chain_id}: {reason}")
    samples = with_helpful_repeats(samples, chains, resolved.data.helpful_repeats)
    return RunSetup(resolved, mote, samples, rejected)


def load_training_base(config: MoteConfig, *, home: Path | None = None, say: Say = print):
    """The frozen base as `train.base_dtype` and `train.quantize` ask (experts come later, in fp32).

    A 4-bit base is placed on this process's GPU at load time and computes in NF4Settings'
    compute dtype; an unquantised one stays on the CPU for accelerate to move.
    """
    quantization = quantization_for_training(config.train.quantize)
    if quantization is not None:
        return load_base_model(config.model, home, dtype=NF4Settings().compute_dtype,
                               quantization_config=quantization, device_map=quantized_device_map(), say=say)
    return load_base_model(config.model, home, dtype=training_base_dtype(config.train.base_dtype), say=say)


class _MetricsFile:
    """Appends one JSON line per step, and forwards to another reporter.

    Why `keep_steps_up_to`: a resumed run replays the steps after its checkpoint, which were
    already logged before the kill; dropping them first keeps one line per step."""

    def __init__(self, path: Path, forward: StepMetricsSink | None) -> None:
        self.path, self.forward = path, forward

    def keep_steps_up_to(self, step: int) -> None:
        """Drop the lines of steps after `step` (and a torn last line), atomically."""
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_bytes().splitlines(keepends=True):
            try:
                logged = json.loads(line).get("step")
            except (ValueError, AttributeError):
                continue
            if isinstance(logged, int) and logged <= step:
                kept.append(line if line.endswith(b"\n") else line + b"\n")
        if not kept:
            self.path.unlink()
        else:
            write_bytes_atomically(self.path, b"".join(kept))

    def on_step(self, step: int, total_steps: int, metrics: dict[str, float]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.forward is not None:
            self.forward.on_step(step, total_steps, metrics)


def checkpoint_step(checkpoint: Path) -> int:
    """The step a checkpoint folder (checkpoints/step-0000012) was saved at."""
    found = re.match(r"step-(\d+)", Path(checkpoint).name)
    if found is None:
        raise ValueError(f"{checkpoint} is not a checkpoint folder (named step-NNNNNNN).")
    return int(found.group(1))


def run_training(
    setup: RunSetup,
    run_dir: Path,
    *,
    resume: bool = True,
    reporter: StepMetricsSink | None = None,
    should_stop: Callable[[], bool] | None = None,
    say: Say = print,
    progress: Progress = no_progress,
) -> TrainResult:
    """Fit (resuming from the run's last checkpoint when there is one, and saying so) and export
    when done. metrics.jsonl keeps one line per step across resumes."""
    from accelerate import PartialState

    main = PartialState().is_main_process  # under several processes only rank 0 writes files
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resume_from = latest_checkpoint(run_dir) if resume else None
    metrics = _MetricsFile(run_dir / "metrics.jsonl", reporter)
    if main:
        (run_dir / "config.yaml").write_text(setup.config.to_yaml(), encoding="utf-8")
        metrics.keep_steps_up_to(checkpoint_step(resume_from) if resume_from else 0)
        if resume_from is not None:
            say(f"Resumed from step {checkpoint_step(resume_from)} (checkpoint {resume_from})")
    result = train_experts(
        setup.mote, setup.samples, setup.config.train, setup.config.data, run_dir,
        resume=resume_from or False, reporter=metrics, should_stop=should_stop, progress=progress,
    )
    if not result.stopped and main:
        announce(progress, "exporting the trained experts")
        extra = {"training": {"method": setup.config.method.value, "steps": result.steps, "final_loss": result.losses[-1] if result.losses else None, "data": vars(setup.config.data)}}
        export_mote(setup.mote, run_dir / EXPORT_DIR, base_model=setup.config.model, extra=extra)
    return result


def load_trained(run_or_export: str | Path, *, home: Path | None = None, say: Say = print) -> MoteModel:
    """A trained model from a run folder (or its export folder), on its recorded base model."""
    folder = Path(run_or_export)
    if (folder / EXPORT_DIR).is_dir():
        folder = folder / EXPORT_DIR
    manifest = read_manifest(folder)
    base, _ = load_base_model(manifest["base_model"], home, say=say, **inference_placement())
    return load_mote_model(folder, base)
