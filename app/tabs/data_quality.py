"""What the app says about a chain dataset's quality: the Data tab's report panel (the per-label
table, the flagged-chain policy, the reasons it would not teach safety) and the Train form's
warning beside its dataset picker.

Why one module for both: the Train form's warning and the Data tab's report must use the same
words and numbers (core.data.quality.teaching_warnings), so a user who reads one recognises the other.
"""
from __future__ import annotations

from core.config import FlaggedPolicy
from jobs.views import DatasetQualityView

POLICY_MEANING = {
    FlaggedPolicy.REGENERATE: "a chain still judged unsafe was generated again, then dropped if still flagged",
    FlaggedPolicy.DROP: "a chain still judged unsafe was dropped at once",
    FlaggedPolicy.KEEP: "a chain still judged unsafe was kept, flagged",
}
KEEP_WARNING = "**Warning:** flagged chains are trained on: chosen by the user (flagged-chain policy keep)."
NO_LABELS = ("This dataset's questions carry no labels (harmful / helpful), so the report cannot say whether "
             "its answers decline harmful questions: the counts below are over all its chains.")


def policy_line(policy: FlaggedPolicy | None) -> str:
    """The flagged-chain policy in words; under keep, the warning line too."""
    if policy is None:
        return "Flagged-chain policy: not recorded (imported chains)."
    line = f"Flagged-chain policy: **{policy.value}** ({POLICY_MEANING[policy]})."
    return f"{line}\n\n{KEEP_WARNING}" if policy is FlaggedPolicy.KEEP else line


def warning_list(warnings: tuple[str, ...]) -> str:
    return "\n".join(f"- ⚠️ {warning}" for warning in warnings)


def quality_panel(view: DatasetQualityView) -> str:
    """The Data tab's report of the selected dataset (markdown)."""
    heading = f"#### Data quality of {view.name} (dataset {view.dataset_id})"
    if not view.chains:
        return f"{heading}\n\nNo chains in this dataset yet: the report appears once its generate job writes some."
    parts = [heading, policy_line(view.flagged_policy)]
    if view.warnings:
        parts.append("**This dataset may not teach safety:**\n\n" + warning_list(view.warnings))
    if not view.labelled:
        parts.append(NO_LABELS)
    parts.append(view.report.to_markdown())
    return "\n\n".join(parts)


def train_warning(view: DatasetQualityView | None) -> str:
    """The Train form's warning for the chosen dataset (empty when its report gives no reason);
    it warns and leaves Train enabled: the user may train on such data on purpose."""
    if view is None or not view.warnings:
        return ""
    return (f"**Dataset {view.name} may not teach safety** (its data-quality report, Data tab):\n\n"
            f"{warning_list(view.warnings)}\n\nYou can still press Train.")
