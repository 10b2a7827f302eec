"""A one-setting sweep: train once per value on the chains minus a held-out slice, keep the value
whose held-out loss is lowest.

Why one setting and the held-out loss: the paper's settings were chosen for 7B models on GPUs;
on another model or data size they are guesses. One setting at a time keeps the cost at a few
short runs, and the held-out loss (core.training.heldout) is the one measurement that does not
reward over-fitting. The jobs layer runs the trials (jobs/sweep_job.py) and stores the result;
this module holds the settings, one trial, and the choice.
"""
from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import Method, MoteConfig
from core.progress import Progress, no_progress

if TYPE_CHECKING:  # torch is loaded only by the worker that trains, not by the specs that check a config
    from core.training.heldout import HoldoutSplit

Say = Callable[[str], None]
#: The file a finished trial leaves in its folder, so a retried sweep skips it.
TRIAL_FILE = "heldout.json"
#: The file a finished sweep leaves in its job folder: every value's loss and the choice.
SWEEP_FILE = "sweep.json"


class SweepSetting(str, enum.Enum):
    """The settings a sweep may vary (section.field of MoteConfig)."""

    LEARNING_RATE = "train.learning_rate"
    EPOCHS = "train.epochs"
    RANK = "experts.rank"

    @property
    def cast(self) -> type:
        return int if self is SweepSetting.RANK else float


@dataclass(frozen=True)
class SweepSettings:
    """What a study's `sweep:` section asks for."""

    setting: SweepSetting
    values: tuple[float, ...]
    """At least two values, each trained once."""
    holdout: float = 0.1
    """Share of the chains held out of every trial to measure its loss on."""
    method: Method = Method.MOTE
    """The method trained for each value."""
    seed: int = 0
    """Draws the held-out slice; the same slice for every value."""

    def __post_init__(self) -> None:
        if len(self.values) < 2 or len(set(self.values)) != len(self.values):
            raise ValueError(f"sweep: values={list(self.values)}: give at least two different values to compare.")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"sweep: holdout={self.holdout} must be between 0 and 1 (e.g. 0.1).")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSettings:
        """From the YAML mapping; errors name the key and what is allowed."""
        unknown = sorted(set(data) - {"setting", "values", "holdout", "method", "seed"})
        if unknown:
            raise ValueError(f"sweep: unknown key(s) {unknown}; use setting, values, holdout, method, seed.")
        try:
            setting = SweepSetting(data.get("setting"))
        except ValueError:
            raise ValueError(f"sweep: setting={data.get('setting')!r} cannot be swept; use one of "
                             f"{[s.value for s in SweepSetting]}.") from None
        try:
            method = Method(data.get("method", Method.MOTE.value))
        except ValueError:
            raise ValueError(f"sweep: method={data.get('method')!r} is not a method; use {[m.value for m in Method]}.") from None
        values = data.get("values")
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"sweep: values={values!r} must be a list of numbers, e.g. [1e-4, 3e-4, 1e-3].")
        return cls(setting, tuple(setting.cast(v) for v in values), float(data.get("holdout", 0.1)), method,
                   int(data.get("seed", 0)))

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.setting.value, "values": list(self.values), "holdout": self.holdout,
                "method": self.method.value, "seed": self.seed}


def with_setting(config: MoteConfig, setting: SweepSetting, value: float) -> MoteConfig:
    """A copy of `config` with one setting changed (checked by MoteConfig's own validator)."""
    data = config.to_dict()
    section, name = setting.value.split(".")
    data[section] = {**data.get(section, {}), name: setting.cast(value)}
    return MoteConfig.from_dict(data)


@dataclass(frozen=True)
class SweepTrial:
    """One value's run and its loss on the held-out chains."""

    value: float
    heldout_loss: float
    steps: int
    final_train_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "heldout_loss": self.heldout_loss, "steps": self.steps,
                "final_train_loss": self.final_train_loss}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepTrial:
        return cls(data["value"], float(data["heldout_loss"]), int(data["steps"]), data.get("final_train_loss"))


@dataclass(frozen=True)
class SweepResult:
    """Every trial and the value kept: what a study records and its report shows."""

    settings: SweepSettings
    trials: tuple[SweepTrial, ...]
    n_train: int
    n_heldout: int
    heldout_ids: tuple[str, ...] = field(default=())

    @property
    def chosen(self) -> SweepTrial:
        return choose_best(self.trials)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "trials": [t.to_dict() for t in self.trials],
                "chosen_value": self.chosen.value, "n_train": self.n_train, "n_heldout": self.n_heldout,
                "heldout_ids": list(self.heldout_ids)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResult:
        return cls(SweepSettings.from_dict(data["settings"]), tuple(SweepTrial.from_dict(t) for t in data["trials"]),
                   int(data["n_train"]), int(data["n_heldout"]), tuple(data.get("heldout_ids") or ()))

    def save(self, folder: Path) -> Path:
        path = Path(folder) / SWEEP_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Path) -> SweepResult:
        path = Path(folder) / SWEEP_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: the sweep has not finished; run (or retry) its job first.")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def to_markdown(self) -> str:
        """The sweep as a table, the kept value marked."""
        name = self.settings.setting.value
        lines = [f"## Sweep of {name} ({self.settings.method.value}, held-out loss on {self.n_heldout} chains, "
                 f"trained on the other {self.n_train})", "",
                 f"| {name} | held-out loss | steps | final training loss | kept |", "|---|---|---|---|---|"]
        for trial in self.trials:
            train = f"{trial.final_train_loss:.4f}" if trial.final_train_loss is not None else "n/a"
            kept = "**yes**" if trial is self.chosen else ""
            lines.append(f"| {trial.value:g} | {trial.heldout_loss:.4f} | {trial.steps} | {train} | {kept} |")
        lines += ["", f"Every method of the study was trained with {name} = {self.chosen.value:g} "
                      "(the lowest held-out loss), on all the chains."]
        return "\n".join(lines)


def choose_best(trials: Sequence[SweepTrial]) -> SweepTrial:
    """The trial with the lowest finite held-out loss (the first such on a tie)."""
    finite = [t for t in trials if math.isfinite(t.heldout_loss)]
    if not finite:
        raise ValueError("No sweep trial has a finite held-out loss (every run diverged): try smaller values.")
    return min(finite, key=lambda t: t.heldout_loss)


def run_trial(config: MoteConfig, setting: SweepSetting, value: float, split: HoldoutSplit, folder: Path, *,
              home: Path | None = None, should_stop: Callable[[], bool] | None = None, reporter=None,
              say: Say = print, progress: Progress = no_progress) -> SweepTrial | None:
    """Train `config` with `setting` = `value` on split.train into `folder`, then measure the loss
    on split.heldout. Returns None when stopped (the run resumes from its checkpoint next time)."""
    from core.data.dataset import encode_chains
    from core.training.heldout import heldout_loss
    from core.training.recipe import run_training, setup_run

    setup = setup_run(with_setting(config, setting, value), split.train, home=home, say=say)
    result = run_training(setup, folder, resume=True, reporter=reporter, should_stop=should_stop, say=say,
                          progress=progress)
    if result.stopped:
        return None
    samples, rejected = encode_chains(split.heldout, setup.mote.tokenizer, setup.config.data, setup.mote.marker_ids)
    for chain_id, reason in rejected:
        say(f"Held-out chain {chain_id} left out: {reason}")
    loss = heldout_loss(setup.mote, samples, seed=setup.config.train.seed,
                        batch_size=setup.config.train.micro_batch_size)
    trial = SweepTrial(setting.cast(value), loss, result.steps, result.losses[-1] if result.losses else None)
    (Path(folder) / TRIAL_FILE).write_text(json.dumps(trial.to_dict()), encoding="utf-8")
    return trial


def stored_trial(folder: Path) -> SweepTrial | None:
    """The trial a finished run left in `folder`, or None (not run, or stopped before the end)."""
    path = Path(folder) / TRIAL_FILE
    return SweepTrial.from_dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None
