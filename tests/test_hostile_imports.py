"""Issue 19 point 5: hostile question files. Each bad row rejects only itself, with its row number
and a reason in words; the CLI shows no traceback; a save is atomic and leaves no stray file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import launch
from app.question_library import QuestionLibrary
from core.data.question_readers import MAX_CSV_FIELD_CHARS, QuestionImportError
from core.data.questions import Question, import_questions, save_questions_jsonl

DEEP = "[" * 100_000 + "]" * 100_000


def cli_import(tmp_path: Path, source: Path, capsys) -> tuple[int, str, str, Path]:
    """`launch.py questions import SOURCE --out OUT` -> (exit code, stdout, stderr, OUT)."""
    out = tmp_path / "saved" / "set.jsonl"
    code = launch.main(["questions", "import", str(source), "--out", str(out)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err, out


def saved_texts(path: Path) -> list[str]:
    return [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines()]


def reasons(report) -> dict[int, str]:
    return {r.row: r.reason for r in report.rejected}


def only_file_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def write_jsonl(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_csv_field_over_128_kib_rejects_only_its_row(tmp_path, capsys):
    source = tmp_path / "big.csv"
    source.write_text("question,category\nWhat is bread?,food\n" + f"{'x' * 200_000},food\n"
                      "How do tides work?,science\n", encoding="utf-8")
    code, out, _, saved = cli_import(tmp_path, source, capsys)
    assert code == 0 and "row 3 over-long question (200000 characters" in out
    assert saved_texts(saved) == ["What is bread?", "How do tides work?"]


def test_a_field_beyond_the_documented_limit_rejects_only_its_row(tmp_path):
    source = tmp_path / "huge.csv"
    source.write_text("question,category\nWhat is bread?,food\n"
                      f"Why is the sky blue?,{'y' * (MAX_CSV_FIELD_CHARS + 1)}\nHow do tides work?,science\n",
                      encoding="utf-8")
    report = import_questions(source)
    assert [q.text for q in report.questions] == ["What is bread?", "How do tides work?"]
    assert reasons(report) == {3: f"a field is longer than {MAX_CSV_FIELD_CHARS:,} characters, the most a "
                                  "CSV/TSV field may hold"}


def test_one_deeply_nested_jsonl_line_rejects_only_itself(tmp_path, capsys):
    source = write_jsonl(tmp_path / "deep.jsonl", json.dumps({"question": "What is bread?"}),
                         '{"question": ' + DEEP + "}", json.dumps({"question": "How do tides work?"}))
    code, out, _, saved = cli_import(tmp_path, source, capsys)
    assert code == 0 and "row 2 nested too deeply" in out
    assert saved_texts(saved) == ["What is bread?", "How do tides work?"]


def test_one_deeply_nested_csv_cell_rejects_only_its_row(tmp_path):
    good = json.dumps([{"role": "user", "content": "What is bread?"}]).replace('"', '""')
    source = tmp_path / "deep.csv"
    source.write_text(f'id,messages\na,"{good}"\nb,"{DEEP}"\n', encoding="utf-8")
    report = import_questions(source)
    assert [q.text for q in report.questions] == ["What is bread?"]
    assert reasons(report) == {3: "malformed messages: the cell is nested too deeply (more levels of [ or { "
                                  "than Python's JSON reader allows)"}


def test_a_deeply_nested_json_list_is_refused_naming_the_file_and_the_fix(tmp_path):
    source = tmp_path / "deep.json"
    source.write_text('[{"question": "What is bread?"}, {"question": ' + DEEP + "}]", encoding="utf-8")
    with pytest.raises(QuestionImportError, match=r"deep\.json: an item is nested too deeply.*\.jsonl"):
        import_questions(source)


@pytest.mark.parametrize("invisible", [
    "\x00\x00\x00", "\u200b\u200b", "\ufeff", "\x1b[31m\x1b[0m", "\u202e", "\u00a0\u200b\t\x07", "\u200d\u200c",
], ids=["nul", "zero-width-space", "bom", "ansi-escape", "bidi-override", "mixed", "joiners"])
def test_a_question_of_only_control_or_invisible_characters_is_rejected(tmp_path, capsys, invisible):
    source = write_jsonl(tmp_path / "invisible.jsonl", json.dumps({"question": "What is bread?"}),
                         json.dumps({"question": invisible}))
    code, out, _, saved = cli_import(tmp_path, source, capsys)
    assert code == 0 and ("row 2 empty question" in out or "row 2 question holds a bidi control" in out), out
    assert saved_texts(saved) == ["What is bread?"]


def test_invisible_characters_are_stripped_from_good_text_but_bidi_controls_reject_it(tmp_path):
    source = write_jsonl(tmp_path / "mixed.jsonl",
                         json.dumps({"question": "What\u200b is\x00 \ufeffbread?", "category": "fo\u200bod"}),
                         json.dumps({"question": "\x1b[1mHow\x1b[0m do tides work?"}),
                         json.dumps({"question": "Is this \u202eevil\u202c text?"}),
                         json.dumps({"question": "Family: \U0001f468\u200d\U0001f469\u200d\U0001f467 ok?"}))
    report = import_questions(source)
    assert [q.text for q in report.questions] == ["What is bread?", "How do tides work?",
                                                  "Family: \U0001f468\u200d\U0001f469\u200d\U0001f467 ok?"]
    assert report.questions[0].category == "food"
    assert reasons(report)[3].startswith("question holds a bidi control character (U+202E)")


def test_a_lone_surrogate_rejects_its_row_and_the_save_works(tmp_path, capsys):
    source = write_jsonl(tmp_path / "surrogate.jsonl", json.dumps({"question": "What is bread?"}),
                         '{"question": "bad \\ud800 text"}', '{"question": "ok?", "category": "\\udfff"}')
    code, out, _, saved = cli_import(tmp_path, source, capsys)
    assert code == 0 and "row 2 question holds a lone surrogate (U+D800)" in out
    assert "row 3 category holds a lone surrogate (U+DFFF)" in out
    assert saved_texts(saved) == ["What is bread?"] and only_file_in(saved.parent) == ["set.jsonl"]
    ref, report = QuestionLibrary(tmp_path / "home").import_set(source, "mine")  # the app's path
    assert len(report.questions) == 1 and only_file_in(Path(ref.source).parent) == ["mine.jsonl"]


def test_a_save_that_cannot_encode_leaves_no_file_at_all(tmp_path):
    folder = tmp_path / "sets"
    folder.mkdir()
    bad = Question(id="q1", text="bad \ud800", kind=None)
    with pytest.raises(ValueError, match="'q1' holds text that cannot be written as UTF-8"):
        save_questions_jsonl([bad], folder / "set.jsonl")
    assert only_file_in(folder) == []


def test_the_save_never_writes_through_a_symlink_planted_at_a_temp_name(tmp_path):
    folder, victim = tmp_path / "sets", tmp_path / "victim.txt"
    folder.mkdir()
    victim.write_text("precious", encoding="utf-8")
    (folder / "set.jsonl.partial").symlink_to(victim)  # the temp name the old save used
    (folder / "other.jsonl").symlink_to(victim)  # a link at the destination is replaced, not followed
    save_questions_jsonl([Question(id="q1", text="What is bread?", kind=None)], folder / "set.jsonl")
    save_questions_jsonl([Question(id="q1", text="What is bread?", kind=None)], folder / "other.jsonl")
    assert victim.read_text(encoding="utf-8") == "precious"
    assert saved_texts(folder / "set.jsonl") == ["What is bread?"] and not (folder / "other.jsonl").is_symlink()
    assert only_file_in(folder) == ["other.jsonl", "set.jsonl", "set.jsonl.partial"]  # the plant is left alone


def test_an_import_that_keeps_no_row_writes_nothing_and_fails(tmp_path, capsys):
    source = write_jsonl(tmp_path / "empty.jsonl", json.dumps({"question": "\u200b"}), json.dumps({"question": ""}))
    code, out, err, saved = cli_import(tmp_path, source, capsys)
    assert code == 1 and "0 questions imported, 2 rows rejected" in out
    assert "nothing was saved" in err and not saved.parent.exists()
    home = tmp_path / "home"
    with pytest.raises(ValueError, match="No usable question in empty.jsonl"):
        QuestionLibrary(home).import_set(source, "empty")
    assert not (home / "question_sets").exists() or only_file_in(home / "question_sets") == []
    with pytest.raises(ValueError, match="No question to save"):
        save_questions_jsonl([], tmp_path / "none.jsonl")
    assert not (tmp_path / "none.jsonl").exists()


def test_a_utf16_csv_with_a_bom_is_decoded(tmp_path, capsys):
    source = tmp_path / "utf16.csv"
    source.write_bytes("question,category\nQu'est-ce que le pain ?,food\nWhy is the sky blue?,science\n".encode("utf-16"))
    code, out, _, saved = cli_import(tmp_path, source, capsys)
    assert code == 0 and "2 questions imported, no rows rejected" in out
    assert saved_texts(saved) == ["Qu'est-ce que le pain ?", "Why is the sky blue?"]


def test_a_utf16_file_without_a_bom_gets_a_hint_to_resave_as_utf8(tmp_path, capsys):
    source = tmp_path / "utf16le.csv"
    source.write_bytes("question\nWhat is bread?\nWhy is the sky blue?\n".encode("utf-16-le"))
    code, _, err, saved = cli_import(tmp_path, source, capsys)
    assert code == 2 and "utf16le.csv looks like UTF-16 text without a byte-order mark" in err
    assert "re-save the file as UTF-8" in err and not saved.parent.exists()


def test_a_latin1_file_gets_a_hint_to_resave_as_utf8(tmp_path, capsys):
    header = tmp_path / "latin1-header.csv"
    header.write_bytes("qüestion\nCafé au lait?\n".encode("latin-1"))
    code, _, err, _ = cli_import(tmp_path, header, capsys)
    assert code == 2 and "header row holds bytes that are not UTF-8" in err and "re-save the file as UTF-8" in err
    rows = tmp_path / "latin1-rows.csv"
    rows.write_bytes("question\nWhat is bread?\nCafé au lait?\n".encode("latin-1"))
    report = import_questions(rows)
    assert [q.text for q in report.questions] == ["What is bread?"]
    assert "not UTF-8" in reasons(report)[3] and "re-save the file as UTF-8" in reasons(report)[3]


def test_a_garbled_header_is_cut_short_with_a_hint_to_resave_as_utf8(tmp_path):
    source = tmp_path / "garbled.csv"
    source.write_bytes(b"\x00" * 5000 + b"\nWhat is bread?\n")
    with pytest.raises(QuestionImportError) as refused:
        import_questions(source)
    message = str(refused.value)
    assert "the names hold invisible characters: re-save the file as UTF-8" in message and len(message) < 600


def test_a_parquet_error_names_the_file_but_not_the_server_path(tmp_path):
    upload = tmp_path / "gradio" / "0123abcd"
    upload.mkdir(parents=True)
    source = upload / "questions.parquet"
    source.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(QuestionImportError) as refused:
        QuestionLibrary(tmp_path / "home").preview(source)
    message = str(refused.value)
    assert message.startswith("questions.parquet is not a readable Parquet file")
    assert str(upload) not in message and str(tmp_path) not in message and os.sep + "gradio" not in message
