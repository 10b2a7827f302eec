"""Pick the text generator and the safety checker a generation run asks for: the model being
aligned, another local model, or an OpenAI-compatible endpoint. Fails fast, before any long run
starts."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.config import GenerateConfig
from core.synthesis.checkers import EndpointChecker, LabelScoreChecker, SafetyChecker
from core.synthesis.pipeline import TextGenerator
from core.synthesis.prompts import PromptSet
from core.model_source import inference_placement, load_base_model


def build_generator(config: GenerateConfig, model: str, *, home: Path | None = None, say: Callable[[str], None] = print) -> TextGenerator:
    """'self' -> `model` (the model being aligned); 'openai' -> the endpoint; else a local model."""
    if config.generator == "openai":
        from core.synthesis.http_generator import HttpGenerator, OpenAIChatClient

        client = OpenAIChatClient(config.endpoint_url, config.endpoint_model, api_key_env=config.api_key_env)
        client.check()
        return HttpGenerator(client, concurrency=config.batch_size)
    from core.decoding.completions import LocalGenerator

    name = model if config.generator == "self" else config.generator
    base, tokenizer = load_base_model(name, home, say=say, **inference_placement())
    return LocalGenerator(base, tokenizer, batch_size=config.batch_size, model_id=name)


def build_checker(config: GenerateConfig, generator: TextGenerator, prompts: PromptSet, *, home: Path | None = None,
                  say: Callable[[str], None] = print) -> SafetyChecker | None:
    """The configured safety checker; None means the generator's own free-text verdict ('text').

    'self' reuses the generator's model (no second copy in memory): label probabilities for a
    local model, logprobs (or strict parsing) for an endpoint.
    """
    template, common = prompts["check"], {"threshold": config.unsafe_threshold, "exemplars": config.exemplars}
    if config.checker == "text":
        return None
    if config.checker == "self":
        if hasattr(generator, "model") and hasattr(generator, "tokenizer"):
            return LabelScoreChecker(generator.model, generator.tokenizer, template, batch_size=config.batch_size,
                                     model_id=generator.id.removeprefix("local:"), **common)
        if hasattr(generator, "client"):
            return EndpointChecker(generator.client, template, concurrency=config.batch_size, **common)
        raise ValueError(f"checker='self' cannot score with generator {generator.id}: choose checker='text', "
                         "'openai' or a local model.")
    if config.checker == "openai":
        from core.synthesis.http_generator import OpenAIChatClient

        client = OpenAIChatClient(config.checker_endpoint_url or config.endpoint_url,
                                  config.checker_endpoint_model or config.endpoint_model, api_key_env=config.api_key_env)
        client.check()
        return EndpointChecker(client, template, concurrency=config.batch_size, **common)
    base, tokenizer = load_base_model(config.checker, home, say=say, **inference_placement())
    return LabelScoreChecker(base.eval(), tokenizer, template, batch_size=config.batch_size, model_id=config.checker, **common)
