"""`launch.py judges validate`: the heuristic judge's report, with dev and held-out figures, stored where the app reads it."""
from __future__ import annotations

import json

import launch
from core.evaluation.heuristic_judge import HEURISTIC_JUDGE_ID
from core.evaluation.validation_store import stored_report, validation_dir


def test_validating_the_heuristic_judge_writes_and_prints_its_report(tmp_path, capsys):
    home = tmp_path / "home"
    assert launch.main(["--home", str(home), "judges", "validate", "--judge", "heuristic"]) == 0
    folder = validation_dir(home, HEURISTIC_JUDGE_ID)
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert report["judge"] == HEURISTIC_JUDGE_ID and set(report["splits"]) == {"dev", "heldout", "all"}
    dev, heldout, pooled = (report["splits"][s] for s in ("dev", "heldout", "all"))
    assert dev["n"] > 0 and heldout["n"] > 0 and dev["n"] + heldout["n"] == pooled["n"]
    assert 0.0 <= heldout["accuracy"] <= 1.0 and heldout["correct"] == round(heldout["accuracy"] * heldout["n"])
    markdown = (folder / "report.md").read_text(encoding="utf-8")
    printed = capsys.readouterr().out
    assert "## dev: confusion" in printed and "## heldout: confusion" in printed and str(folder / "report.md") in printed
    assert stored_report(home, HEURISTIC_JUDGE_ID) == markdown


def test_out_overrides_the_folder_and_an_unknown_judge_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "elsewhere"
    assert launch.main(["--home", str(tmp_path / "home"), "judges", "validate", "--judge", "heuristic", "--out", str(out)]) == 0
    assert (out / "report.md").is_file() and stored_report(tmp_path / "home", HEURISTIC_JUDGE_ID) is None
    assert launch.main(["--home", str(tmp_path / "home"), "judges", "validate", "--judge", "nonsense"]) == 2
    assert "is not known: use heuristic" in capsys.readouterr().err


def test_judge_folders_are_safe_names_for_any_judge_id(tmp_path):
    assert validation_dir(tmp_path, "llm:http://127.0.0.1:8000/v1#mote:label-prob").name == "llm_http___127.0.0.1_8000_v1_mote_label-prob"
