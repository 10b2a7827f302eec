"""`launch.py serve`: a run, base:MODEL or prompt:PIPELINE:SUBJECT as an OpenAI-compatible chat-completions API."""
from __future__ import annotations

import argparse

from cli.options import home_from

VERBS = ("serve",)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="serve a run or a base model as an OpenAI-compatible API (/v1/chat/completions)")
    serve.add_argument("--run", required=True, help="run folder, its export folder, base:MODEL (alias, folder or hub id), or "
                            "prompt:PIPELINE:SUBJECT (e.g. prompt:aligncot:base:smollm2-135m-instruct)")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--model-id", help="model name shown to clients (default: the run's label, e.g. mote:RUN)")
    serve.add_argument("--max-stage-tokens", type=int, default=256, help="default token limit of each stage")
    serve.add_argument("--api-key", help="key clients must send as 'Authorization: Bearer KEY' (visible in ps: "
                                         "prefer --api-key-file or $MOTE_API_KEY); required beyond loopback")
    serve.add_argument("--api-key-file", help="file whose first line is the API key")
    serve.add_argument("--max-prompt-tokens", type=int, default=4096, help="longest prompt a request may send")
    serve.add_argument("--max-completion-tokens", type=int, default=4096,
                       help="largest max_tokens / max_stage_tokens a request may ask for")
    serve.add_argument("--max-total-tokens", type=int, default=16384,
                       help="largest prompt + reply token budget of one request")
    serve.add_argument("--batch-size", type=int, default=8,
                       help="most requests decoded together (continuous batching); more wait for a free row (default 8)")


def run(args: argparse.Namespace) -> int:
    """Serve a run, base:MODEL or a prompting pipeline as an OpenAI-compatible API until Ctrl+C."""
    from core.decoding.chain_programs import GenerationSettings
    from core.serving.access import check_exposure, resolve_api_key
    from core.serving.limits import ServeLimits
    from core.serving.server import base_url, check_port, serve_openai_api
    from core.synthesis.prompting_subject import load_any_subject

    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size} is out of range: use an integer >= 1.")
    api_key = resolve_api_key(args.api_key, args.api_key_file)
    check_exposure(args.host, api_key)
    limits = ServeLimits(max_prompt_tokens=args.max_prompt_tokens, max_completion_tokens=args.max_completion_tokens,
                         max_total_tokens=args.max_total_tokens)
    check_port(args.host, args.port)  # before the model loads
    subject = load_any_subject(args.run, home=home_from(args))
    model_id = args.model_id or subject.label
    print(f"Serving {subject.label} ({subject.kind.value}) as model '{model_id}'.\n"
          f"OpenAI clients: base URL {base_url(args.host, args.port)}  (Ctrl+C stops)"
          f"{'; API key required' if api_key else ''}", flush=True)
    serve_openai_api(subject, args.host, args.port, model_id=model_id,
                     defaults=GenerationSettings(max_stage_tokens=args.max_stage_tokens), limits=limits, api_key=api_key,
                     batch_size=args.batch_size)
    return 0
