"""Pick the text generator a generation run asks for: the model being aligned, another local
model, or an OpenAI-compatible endpoint. Fails fast, before any long run starts."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.config import GenerateConfig
from core.synthesis.pipeline import TextGenerator
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
