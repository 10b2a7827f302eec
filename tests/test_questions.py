"""Question import, duplicates and leakage: bad rows are named by row and reason, good rows kept."""
from __future__ import annotations

import json
import random
import time

import pytest

from core.data.leakage import deduplicate_across, drop_leakage, find_leakage
from core.data.questions import (
    ColumnMapping,
    Question,
    QuestionImportError,
    QuestionKind,
    bundled_sets,
    import_questions,
    load_question_set,
    normalise,
    save_questions_jsonl,
)

BUNDLED_NAMES = ("train", "eval_harmful", "eval_helpful", "eval_benign")


def jsonl_bytes(*lines: object) -> bytes:
    """Each item is a record (dumped as JSON) or raw bytes written as-is."""
    return b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines) + b"\n"


def rejected(report) -> dict[int, str]:
    return {r.row: r.reason for r in report.rejected}


def q(id_: str, text: str, kind: QuestionKind | None = None) -> Question:
    return Question(id=id_, text=text, kind=kind, category="", source="test")


# --- per-format malformed files ------------------------------------------------------------------

def test_jsonl_bad_lines_are_rejected_by_line_number_and_good_ones_kept(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(jsonl_bytes(
        {"id": "a1", "question": "How do I bake bread?", "kind": "helpful", "category": "cooking"},  # 1
        {"question": "   "},                                           # 2 empty
        {"question": "how do I bake   bread"},                         # 3 duplicate of 1
        {"question": "x" * 5000},                                      # 4 over-long
        b'{"question": "caf\xe9 au lait?"}',                           # 5 invalid UTF-8
        b'{"question": "broken',                                       # 6 invalid JSON
        {"prompt": "no question key here"},                            # 7 missing column
        b"",                                                           # 8 blank: skipped, not rejected
        {"question": "What is the capital of France?", "kind": "weird"},  # 9 invalid kind
        {"question": "Tell me a joke.", "kind": "HELPFUL"},            # 10 kept
        [1, 2],                                                        # 11 not an object
        {"id": "a1", "question": "Another question"},                  # 12 duplicate id
    ))
    report = import_questions(path)
    reasons = rejected(report)
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 9, 11, 12]
    assert reasons[2] == "empty question"
    assert reasons[3].startswith("duplicate question") and "row 1" in reasons[3]
    assert reasons[4].startswith("over-long") and "5000" in reasons[4]
    assert reasons[5].startswith("undecodable: invalid UTF-8")
    assert reasons[6].startswith("undecodable: invalid JSON")
    assert reasons[7] == "missing column 'question'"
    assert reasons[9].startswith("invalid kind 'weird'") and "harmful" in reasons[9]
    assert reasons[11].startswith("not a JSON object")
    assert reasons[12].startswith("duplicate id 'a1'")
    assert [(x.id, x.text, x.kind, x.category) for x in report.questions] == [
        ("a1", "How do I bake bread?", QuestionKind.HELPFUL, "cooking"),
        ("bad-10", "Tell me a joke.", QuestionKind.HELPFUL, ""),
    ]
    assert report.source == "bad.jsonl" and report.questions[0].source == "bad.jsonl"
    assert report.summary().startswith("2 questions imported, 9 rows rejected: row 2 empty question; row 3 duplicate")


def test_csv_rows_are_numbered_as_a_spreadsheet_shows_them(tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_bytes(
        b"id,question,kind,category\r\n"                           # row 1: header
        b"q1,How do I reset my router?,helpful,tech\r\n"           # 2 kept
        b'q2,"",helpful,tech\r\n'                                  # 3 empty
        b"q3,HOW do I reset my router,,\r\n"                       # 4 duplicate of 2
        b"q4," + b"y" * 5000 + b",,\r\n"                           # 5 over-long
        b"q5,caf\xe9 au lait?,,\r\n"                               # 6 invalid UTF-8
        b"q6\r\n"                                                  # 7 short row: missing column
        b'q7,"A question\non two lines?",benign,misc\r\n'          # 8 kept (one spreadsheet row)
        b"q8,What about this?,evil,\r\n"                           # 9 invalid kind
        b"\r\n"                                                    # 10 blank: skipped
        b"q9,Last one?,harmful,weapons\r\n"                        # 11 kept
    )
    report = import_questions(path)
    reasons = rejected(report)
    assert sorted(reasons) == [3, 4, 5, 6, 7, 9]
    assert reasons[3] == "empty question"
    assert "duplicate" in reasons[4] and "row 2" in reasons[4]
    assert reasons[5].startswith("over-long")
    assert reasons[6].startswith("undecodable")
    assert reasons[7] == "missing column 'question'"
    assert reasons[9].startswith("invalid kind 'evil'")
    assert [(x.id, x.kind) for x in report.questions] == [
        ("q1", QuestionKind.HELPFUL), ("q7", QuestionKind.BENIGN), ("q9", QuestionKind.HARMFUL)]
    assert report.questions[1].text == "A question\non two lines?"


def test_json_list_and_json_lines_named_json(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"question": "A?"}, "oops", {"question": ""}, {"question": "B?"}]))
    report = import_questions(listed)
    assert rejected(report) == {2: "not a JSON object (got str)", 3: "empty question"}
    assert [x.id for x in report.questions] == ["list-1", "list-4"]
    lines = tmp_path / "lines.json"
    lines.write_bytes(jsonl_bytes({"question": "A?"}, {"question": "B?"}))
    assert [x.text for x in import_questions(lines).questions] == ["A?", "B?"]


def test_parquet_nulls_duplicates_and_long_rows(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "set.parquet"
    prompts = ["Explain photosynthesis.", None, "explain photosynthesis", "z" * 50, "Name three rivers."]
    pq.write_table(pa.table({"prompt": prompts, "category": ["bio", "x", "bio", "x", "geo"]}), path)
    report = import_questions(path, default_kind=QuestionKind.HELPFUL, max_chars=30)
    reasons = rejected(report)
    assert sorted(reasons) == [2, 3, 4]
    assert reasons[2] == "empty question" and "duplicate" in reasons[3] and reasons[4].startswith("over-long")
    assert [(x.id, x.kind, x.category) for x in report.questions] == [
        ("set-1", QuestionKind.HELPFUL, "bio"), ("set-5", QuestionKind.HELPFUL, "geo")]


def test_datasets_save_to_disk_folder_with_splits(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "saved"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(
            [{"instruction": "Write a poem."}, {"instruction": ""}, {"instruction": "Write a poem!"}]),
        "test": datasets.Dataset.from_list([{"instruction": "Summarise this."}]),
    }).save_to_disk(str(folder))
    report = import_questions(folder)
    assert [x.text for x in report.questions] == ["Write a poem."]
    assert rejected(report) == {2: "empty question", 3: "duplicate question (same as row 1)"}
    assert [x.id for x in import_questions(folder, split="test").questions] == ["saved-1"]
    with pytest.raises(QuestionImportError, match=r"no split 'validation'.*\['train', 'test'\]"):
        import_questions(folder, split="validation")
    single = tmp_path / "single"
    datasets.Dataset.from_list([{"text": "Only one?"}]).save_to_disk(str(single))
    assert [x.text for x in import_questions(single).questions] == ["Only one?"]


def test_openai_messages_keep_the_conversation_and_ask_the_last_user_turn(tmp_path):
    path = tmp_path / "chats.jsonl"
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "How do volcanoes form?"},
                    {"role": "assistant", "content": "Magma rises."}]
    path.write_bytes(jsonl_bytes(
        {"messages": conversation},
        {"messages": [{"role": "assistant", "content": "hi"}]},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Describe a cat."}]}]},
    ))
    report = import_questions(path)
    assert rejected(report) == {2: "no user message in messages",
                                3: "malformed messages: message 1 needs role/content (OpenAI) or from/value (ShareGPT)"}
    first, parts = report.questions
    assert first.text == "How do volcanoes form?" and first.messages == conversation
    assert first.prompt_messages() == conversation[:4]
    assert parts.text == "Describe a cat." and parts.messages == [{"role": "user", "content": "Describe a cat."}]


def test_sharegpt_conversations_become_openai_messages(tmp_path):
    path = tmp_path / "share.jsonl"
    chat = [{"from": "human", "value": "Tell me about owls."}, {"from": "gpt", "value": "Owls hunt at night."},
            {"from": "human", "value": "Go on."}]
    other = [{"from": "human", "value": "Tell me about bats."}, {"from": "gpt", "value": "Bats echolocate."},
             {"from": "human", "value": "Go on."}]
    path.write_bytes(jsonl_bytes({"conversations": chat}, {"conversations": other}, {"conversations": chat}))
    report = import_questions(path)
    assert [x.text for x in report.questions] == ["Go on.", "Go on."]  # same last turn, different chats
    assert rejected(report) == {3: "duplicate question (same as row 1)"}
    assert report.questions[0].messages == [
        {"role": "user", "content": "Tell me about owls."}, {"role": "assistant", "content": "Owls hunt at night."},
        {"role": "user", "content": "Go on."}]


# --- column mapping and file-level errors --------------------------------------------------------

def test_instruction_column_is_auto_detected_and_custom_columns_mapped(tmp_path):
    auto = tmp_path / "alpaca.csv"
    auto.write_text("Instruction,output\nGive three tips for sleep.,...\n", encoding="utf-8")
    assert [x.text for x in import_questions(auto).questions] == ["Give three tips for sleep."]
    custom = tmp_path / "custom.jsonl"
    custom.write_bytes(jsonl_bytes(
        {"uid": 7, "my_prompt": "How are vaccines made?", "label": "benign", "topic": "health"},
        {"uid": 8, "my_prompt": "Why is the sky blue?", "topic": "science"},
    ))
    mapping = ColumnMapping(question="my_prompt", id="uid", kind="label", category="topic")
    report = import_questions(custom, mapping, source_name="mine")
    assert [(x.id, x.kind, x.category, x.source) for x in report.questions] == [("7", QuestionKind.BENIGN, "health", "mine")]
    assert rejected(report) == {2: "missing column 'label'"}


def test_missing_column_error_names_the_columns_found_and_the_fix(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_bytes(jsonl_bytes({"foo": "What?", "bar": 1}))
    with pytest.raises(QuestionImportError, match=r"no question column.*'foo', 'bar'.*ColumnMapping\(question="):
        import_questions(path)
    with pytest.raises(QuestionImportError, match=r"no column 'prompt_text'.*'foo', 'bar'.*ColumnMapping\(question="):
        import_questions(path, ColumnMapping(question="prompt_text"))
    with pytest.raises(QuestionImportError, match=r"no column 'kind_col'.*ColumnMapping\(kind="):
        import_questions(path, ColumnMapping(question="foo", kind="kind_col"))


def test_unreadable_sources_say_what_is_supported(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("What?")
    with pytest.raises(QuestionImportError, match=r"unsupported format '.txt'.*\.jsonl.*\.parquet"):
        import_questions(tmp_path / "notes.txt")
    with pytest.raises(QuestionImportError, match=r"No file or folder at .*missing.jsonl"):
        import_questions(tmp_path / "missing.jsonl")
    (tmp_path / "plain").mkdir()
    with pytest.raises(QuestionImportError, match=r"not one saved with datasets' save_to_disk"):
        import_questions(tmp_path / "plain")
    with pytest.raises(ValueError, match=r"max_chars must be a positive"):
        import_questions(tmp_path / "notes.txt", max_chars=0)


def test_hub_name_offline_says_to_pass_a_local_file(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'org/prompts' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(QuestionImportError, match=r"Cannot reach the Hugging Face hub.*'org/prompts'.*local file"):
        import_questions("org/prompts")


# --- sets: save, load, normalise, duplicates, leakage --------------------------------------------

def test_saved_questions_read_back_unchanged(tmp_path):
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Name a prime."}]
    questions = [Question("h1", "How is steel made?", QuestionKind.HARMFUL, "industry", "hand-written"),
                 Question("c1", "Name a prime.", None, "", "chat-import", messages=chat),
                 Question("u1", "Ça va ?", QuestionKind.HELPFUL, "", "hand-written")]
    path = save_questions_jsonl(questions, tmp_path / "out" / "set.jsonl")
    report = load_question_set(str(path))
    assert report.rejected == [] and report.questions == questions


def test_load_question_set_unknown_name_lists_bundled_sets():
    with pytest.raises(QuestionImportError, match=r"No bundled question set named 'nope'.*bundled sets:"):
        load_question_set("nope")


def test_normalise_lowercases_collapses_spaces_and_strips_end_punctuation():
    assert normalise("  How do I   X?? ") == "how do i x"
    assert normalise("¿Qué pasa?") == "qué pasa"
    assert normalise("Learn C++?") == "learn c++"
    assert normalise("...") == ""


def test_deduplicate_across_keeps_the_first_occurrence_in_set_order():
    sets = {"train": [q("t1", "What is DNA?"), q("t2", "Define entropy.")],
            "eval": [q("e1", "what is dna"), q("e2", "Why do cats purr?"), q("e3", "WHY do cats purr")]}
    kept, removed = deduplicate_across(sets)
    assert [x.id for x in kept["train"]] == ["t1", "t2"]
    assert [x.id for x in kept["eval"]] == ["e2"]
    assert removed == [("eval", "e1", "t1"), ("eval", "e3", "e2")]


def test_leakage_finds_exact_and_near_duplicates_and_drop_removes_them():
    near_text = "Please explain in detail how the immune system fights off a common cold virus infection"
    train = [q("t1", "How do I make a cake at home?"), q("t2", near_text), q("t3", "What is a prime number?")]
    evaluation = [q("e1", "how do i make a cake at home"), q("e2", near_text + " today"),
                  q("e3", "Which planet is largest?")]
    pairs = find_leakage(train, evaluation)
    assert [(p.train_id, p.eval_id) for p in pairs] == [("t1", "e1"), ("t2", "e2")]
    assert pairs[0].similarity == 1.0 and pairs[1].similarity == pytest.approx(15 / 16)
    assert pairs[1].text == near_text + " today"
    assert [x.id for x in drop_leakage(evaluation, pairs)] == ["e3"]
    assert find_leakage(train, evaluation, near=0.95)[1:] == []  # 15/16 is below 0.95
    with pytest.raises(ValueError, match=r"near must be"):
        find_leakage(train, evaluation, near=0)


@pytest.mark.parametrize("near", [0.5, 0.7, 0.9, 1.0])
def test_leakage_index_finds_every_pair_brute_force_finds(near):
    rng = random.Random(near)
    vocab = [f"w{i}" for i in range(30)]

    def make(prefix: str, n: int) -> list[Question]:
        return [q(f"{prefix}{i}", " ".join(rng.sample(vocab, rng.randint(1, 8)))) for i in range(n)]

    train, evaluation = make("t", 300), make("e", 100)
    found = {(p.train_id, p.eval_id) for p in find_leakage(train, evaluation, near=near)}
    expected = set()
    for e in evaluation:
        for t in train:
            a, b = set(e.key.split()), set(t.key.split())
            if e.key == t.key or len(a & b) / len(a | b) >= near:
                expected.add((t.id, e.id))
    assert expected and found == expected


def test_leakage_scales_to_10k_by_1k():
    rng = random.Random(0)
    vocab = [f"word{i}" for i in range(5000)]
    train = [q(f"t{i}", " ".join(rng.choices(vocab, k=12))) for i in range(10_000)]
    evaluation = [q(f"e{i}", " ".join(rng.choices(vocab, k=12))) for i in range(1_000)]
    evaluation[0] = q("e0", train[5].text.upper())
    start = time.perf_counter()
    pairs = find_leakage(train, evaluation)
    assert time.perf_counter() - start < 10
    assert ("t5", "e0") in {(p.train_id, p.eval_id) for p in pairs}


# --- the bundled sets (assets/questions) ---------------------------------------------------------

BUNDLED = bundled_sets()


@pytest.mark.parametrize("name", sorted(set(BUNDLED_NAMES) | set(BUNDLED)))
def test_bundled_set_loads_without_rejections(name):
    if name not in BUNDLED:
        pytest.skip(f"assets/questions/{name}.jsonl is not there yet")
    report = load_question_set(name)
    assert report.rejected == [], report.summary()
    assert report.questions
    assert all(x.kind is not None for x in report.questions)
    if name.startswith("eval_"):
        assert {x.kind.value for x in report.questions} == {name.removeprefix("eval_")}


@pytest.mark.parametrize("name", [n for n in BUNDLED_NAMES if n.startswith("eval_")])
def test_bundled_eval_sets_do_not_leak_from_train(name):
    if "train" not in BUNDLED or name not in BUNDLED:
        pytest.skip("the bundled train and eval sets are not both there yet")
    pairs = find_leakage(load_question_set("train").questions, load_question_set(name).questions)
    assert pairs == [], [(p.train_id, p.eval_id, round(p.similarity, 3)) for p in pairs]
