"""How the Evaluate tab shows run-to-run comparisons: the settings that differ, as Markdown.

Why in the app: which settings differ is read from jobs/ (jobs.queries.run_settings); laying
them out as a table is presentation.
"""
from __future__ import annotations

import json

from jobs.views import RunSettings


def settings_diff_table(runs: list[RunSettings]) -> str:
    """A Markdown table of the settings (dotted names) that differ between training jobs."""
    if len(runs) < 2:
        return "Pick two or more training jobs to compare their settings."
    keys = sorted({k for run in runs for k in run.settings})
    differing = [k for k in keys if len({json.dumps(run.settings.get(k), sort_keys=True) for run in runs}) > 1]
    if not differing:
        return "The runs share every setting."
    header = "| setting | " + " | ".join(f"job {run.job_id}" for run in runs) + " |"
    lines = [header, "|---|" + "---|" * len(runs)]
    lines += [f"| {k} | " + " | ".join(str(run.settings.get(k, "")) for run in runs) + " |" for k in differing]
    return "\n".join(lines)
