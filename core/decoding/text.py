"""Text into token ids and back, the same way for every decoder: prompts, end-of-turn ids, and
the text a stream shows as tokens arrive.

Why one module: chain programs, base-model subjects and plain completions must build their
prompts and recognise the end of a turn identically, or a base model and the runs trained from
it would not be compared on equal terms.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from core.data.dataset import chat_prefix_suffix


def question_prompt_ids(tokenizer: PreTrainedTokenizerBase, question: str, system_prompt: str | None) -> list[int]:
    """A question's prompt: the chat template up to the assistant turn, exactly as training
    chains are encoded (core.data.dataset), so a model is asked the way it was trained."""
    prefix, _ = chat_prefix_suffix(tokenizer, question, system_prompt)
    return tokenizer(prefix, add_special_tokens=False)["input_ids"]


def messages_prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]],
                        response_prefix: str = "") -> list[int]:
    """Chat messages with the generation prompt, then `response_prefix` (text the reply is made
    to start with)."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return tokenizer(text + response_prefix, add_special_tokens=False)["input_ids"]


def end_of_turn_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every id that ends a turn: the model's generation-config eos ids (chat models often have
    several) and the tokenizer's eos."""
    config = model.generation_config
    eos = config.eos_token_id if config is not None else None
    ends = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    return sorted(i for i in ends if i is not None)


class TextDelta:
    """The new text of a growing reply, for streaming. Callers decode the whole token list each
    time (a token's text can depend on its neighbours); an unfinished multi-byte character
    (decoded as U+FFFD) is held back until its rest arrives."""

    def __init__(self) -> None:
        self.emitted = ""

    def __call__(self, text: str) -> str:
        """The text added since the last call ('' while a character is unfinished)."""
        if text.endswith("\ufffd"):
            return ""
        delta, self.emitted = text[len(self.emitted):], text
        return delta
