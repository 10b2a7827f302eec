"""`launch.py [ui]`: serve the Gradio app, with the job queue running in this process.

`ui` is the default verb: its flags (--host --port --share --auth --insecure-public --demo) are also accepted before any
verb, so `python launch.py --port 9000` serves the app.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from app.demo_options import DemoOptions, parse_run_ids
from app.launcher import DEFAULT_HOST, DEFAULT_PORT, ServeOptions, serve_app
from cli.options import queue_from
from core.outbound import OutboundPolicy, build_policy

VERBS = ("ui",)


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """'USER:PASS', or a file holding one USER:PASS per line (blank lines and # comments skipped)."""
    if not value:
        return None
    path = Path(value).expanduser()
    from_file = path.is_file()
    lines = path.read_text(encoding="utf-8").splitlines() if from_file else [value]
    where = f"{path}" if from_file else "--auth"
    pairs = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"{where}{f' line {number}' if from_file else ''}: expected USER:PASS "
                             "(a user name, a colon, a password), or a file with one USER:PASS per line.")
        pairs.append((user.strip(), password))
    if not pairs:
        raise ValueError(f"{where} holds no USER:PASS line: add one, e.g. alice:a-long-password.")
    return pairs


def add_server_arguments(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """--host --port --share --auth --insecure-public and the outbound policy. `suppress` (on the
    `ui` verb itself) leaves the values given before the verb in place unless the flag is repeated
    after it."""
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--host", default=default(DEFAULT_HOST), help=f"address to serve on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=default(DEFAULT_PORT), help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--share", action="store_true", default=default(False),
                        help="also publish a temporary public gradio.live link (needs --auth)")
    parser.add_argument("--auth", default=default(None), help="login USER:PASS, or a file with one USER:PASS per line "
                        "(required with a --host beyond loopback, e.g. 0.0.0.0, unless --insecure-public)")
    parser.add_argument("--insecure-public", action="store_true", default=default(False),
                        help="serve beyond loopback with NO login (anyone who can reach the port can start jobs "
                             "and read the data directory); only on a network you trust")
    parser.add_argument("--allow-judge-host", action="append", default=default([]), metavar="HOST[:PORT]",
                        help="a host that judge and generator URLs from the UI/API may name (repeatable; loopback is "
                             "always allowed; also MOTE_ALLOWED_JUDGE_HOSTS=h1,h2)")
    parser.add_argument("--judge-key-env", action="append", default=default([]), metavar="NAME=HOST[,HOST]",
                        help="an API key variable UI/API callers may name, sent only to the given host(s) (repeatable; "
                             "a bare NAME binds to the --allow-judge-host hosts; also MOTE_ALLOWED_KEY_ENVS=N=h;N2=h2)")
    parser.add_argument("--demo", action="store_true", default=default(False),
                        help="serve a read-only demo page (chat, reports, chains, runs; nothing can be started, "
                             "edited or deleted); with --share it still needs --auth")
    parser.add_argument("--demo-runs", default=default(None), metavar="ID,ID",
                        help="training job ids of the runs a --demo shows (default: every finished run)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    ui = subparsers.add_parser("ui", help="serve the app (the default when no verb is given)")
    add_server_arguments(ui, suppress=True)


def server_options(args: argparse.Namespace) -> ServeOptions:
    """The app's ServeOptions from --host/--port/--share/--auth/--demo (an --auth file is read here)."""
    return ServeOptions(args.host, args.port, args.share, parse_auth(args.auth), outbound_policy(args),
                        insecure_public=getattr(args, "insecure_public", False), demo=demo_options(args))


def demo_options(args: argparse.Namespace) -> DemoOptions | None:
    """--demo [--demo-runs ID,ID] -> DemoOptions; None for the full workbench."""
    runs = getattr(args, "demo_runs", None)
    if not getattr(args, "demo", False):
        if runs:
            raise ValueError("--demo-runs chooses the runs a demo shows: add --demo, e.g. --demo --demo-runs 3,7.")
        return None
    return DemoOptions(run_job_ids=parse_run_ids(runs) if runs else None)


def outbound_policy(args: argparse.Namespace) -> OutboundPolicy:
    """The operator's outbound policy from --allow-judge-host / --judge-key-env and the environment."""
    return build_policy(getattr(args, "allow_judge_host", None) or [], getattr(args, "judge_key_env", None) or [])


def run(args: argparse.Namespace) -> int:
    """Serve the Gradio app until Ctrl-C or SIGTERM; the job queue (scheduler) runs in this process."""
    options = server_options(args)
    options.check()  # before the model home or the database are touched
    return serve_app(queue_from(args), options)
