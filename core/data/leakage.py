"""Duplicates across question sets and train/eval leakage.

Why: an evaluation question that also sits (nearly word for word) in the training set measures
memory, not behaviour; `find_leakage` finds such pairs (exact, or token-Jaccard >= near, through an
index on each question's rarest words instead of all pairs) and `drop_leakage` removes them.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from core.data.questions import Question

_WORD = re.compile(r"\w+")


@dataclass
class LeakagePair:
    """An evaluation question that also appears (exactly: similarity 1.0, or nearly) in training."""

    train_id: str
    eval_id: str
    similarity: float
    text: str



def deduplicate_across(sets: dict[str, list[Question]]
                       ) -> tuple[dict[str, list[Question]], list[tuple[str, str, str]]]:
    """Keep each question's first occurrence across sets (in dict order, so list the set that
    should win first); returns the kept sets and (set name, removed id, id it duplicates)."""
    first_id: dict[str, str] = {}
    kept: dict[str, list[Question]] = {}
    removed: list[tuple[str, str, str]] = []
    for name, questions in sets.items():
        kept[name] = []
        for question in questions:
            key = question.key
            if key in first_id:
                removed.append((name, question.id, first_id[key]))
            else:
                first_id[key] = question.id
                kept[name].append(question)
    return kept, removed


def _prefix_length(size: int, near: float) -> int:
    """How many of a set's rarest tokens two sets with Jaccard >= near must share one of."""
    return size - math.ceil(near * size - 1e-9) + 1


def find_leakage(train: list[Question], evaluation: list[Question], *, near: float = 0.9) -> list[LeakagePair]:
    """Evaluation questions that match a training question exactly (normalised) or nearly
    (token-set Jaccard >= near). Near pairs use prefix filtering: with tokens ordered rarest
    first, two sets that similar must share a token among their first few, so only train
    questions indexed under those tokens are compared, not all len(train) x len(evaluation)."""
    if not 0 < near <= 1:
        raise ValueError(f"near must be a Jaccard similarity in (0, 1], got {near}.")
    exact: dict[str, list[int]] = defaultdict(list)
    train_tokens = []
    for i, question in enumerate(train):
        exact[question.key].append(i)
        train_tokens.append(set(_WORD.findall(question.key)))
    frequency = Counter(token for tokens in train_tokens for token in tokens)

    def rarest_first(tokens: set[str]) -> list[str]:
        return sorted(tokens, key=lambda t: (frequency[t], t))

    index: dict[str, list[int]] = defaultdict(list)
    for i, tokens in enumerate(train_tokens):
        for token in rarest_first(tokens)[: _prefix_length(len(tokens), near)]:
            index[token].append(i)
    pairs: list[LeakagePair] = []
    for question in evaluation:
        key = question.key
        exact_rows = exact.get(key, [])
        pairs += [LeakagePair(train[i].id, question.id, 1.0, question.text) for i in exact_rows]
        tokens = set(_WORD.findall(key))
        candidates = {i for t in rarest_first(tokens)[: _prefix_length(len(tokens), near)] for i in index.get(t, ())}
        near_pairs = []
        for i in candidates.difference(exact_rows):
            other = train_tokens[i]
            if near * len(tokens) - 1e-9 <= len(other) <= len(tokens) / near + 1e-9:
                similarity = len(tokens & other) / len(tokens | other)
                if similarity >= near:
                    near_pairs.append(LeakagePair(train[i].id, question.id, similarity, question.text))
        pairs += sorted(near_pairs, key=lambda p: (-p.similarity, p.train_id))
    return pairs


def drop_leakage(evaluation: list[Question], pairs: list[LeakagePair]) -> list[Question]:
    """The evaluation set without the questions named in `pairs` (from find_leakage)."""
    leaked = {pair.eval_id for pair in pairs}
    return [question for question in evaluation if question.id not in leaked]
