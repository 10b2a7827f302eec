"""Serving the app: host, port, share link and login, around build_ui.

Why a share link needs a login: --share publishes the app on a public gradio.live address, and
the app can start jobs, read files under its data directory and load models; without a login
anyone with the link could. When the share server cannot be reached (no internet), Gradio keeps
serving locally; the app says so in the terminal and in a banner on the page.
"""
from __future__ import annotations

import argparse
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from core.outbound import LOOPBACK_ONLY, OutboundPolicy, build_policy

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
SHARE_NEEDS_AUTH = ("--share publishes the app on a public address, so it needs a login: add --auth USER:PASS "
                    "(or --auth FILE, a file with one USER:PASS per line), e.g. "
                    "`python launch.py --share --auth alice:a-long-password`.")


@dataclass
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    share: bool = False
    auth: list[tuple[str, str]] | None = None
    outbound: OutboundPolicy = LOOPBACK_ONLY
    """Hosts and key variables that UI and API callers may use (judges, generator endpoints)."""

    def check(self) -> None:
        if self.share and not self.auth:
            raise ValueError(SHARE_NEEDS_AUTH)
        if not (1 <= self.port <= 65535):
            raise ValueError(f"--port {self.port} is not a TCP port: use 1-65535 (default {DEFAULT_PORT}).")


@dataclass
class RunningApp:
    demo: object
    local_url: str
    share_url: str | None
    notices: list[str] = field(default_factory=list)


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """'USER:PASS', or a file holding one USER:PASS per line (blank lines and # comments skipped)."""
    if not value:
        return None
    path = Path(value).expanduser()
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [value]
    where = f"{path}" if path.is_file() else "--auth"
    pairs = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"{where}{f' line {number}' if path.is_file() else ''}: expected USER:PASS "
                             "(a user name, a colon, a password), or a file with one USER:PASS per line.")
        pairs.append((user.strip(), password))
    if not pairs:
        raise ValueError(f"{where} holds no USER:PASS line: add one, e.g. alice:a-long-password.")
    return pairs


def add_serve_arguments(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """--host --port --share --auth; `suppress` (on the `ui` verb) leaves the top-level values unless given."""
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parser.add_argument("--host", default=default(DEFAULT_HOST), help=f"address to serve on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=default(DEFAULT_PORT), help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--share", action="store_true", default=default(False),
                        help="also publish a temporary public gradio.live link (needs --auth)")
    parser.add_argument("--auth", default=default(None), help="login USER:PASS, or a file with one USER:PASS per line")
    parser.add_argument("--allow-judge-host", action="append", default=default([]), metavar="HOST[:PORT]",
                        help="a host that judge and generator URLs from the UI/API may name (repeatable; loopback is "
                             "always allowed; also MOTE_ALLOWED_JUDGE_HOSTS=h1,h2)")
    parser.add_argument("--judge-key-env", action="append", default=default([]), metavar="NAME=HOST[,HOST]",
                        help="an API key variable UI/API callers may name, sent only to the given host(s) (repeatable; "
                             "a bare NAME binds to the --allow-judge-host hosts; also MOTE_ALLOWED_KEY_ENVS=N=h;N2=h2)")


def outbound_policy(args: argparse.Namespace) -> OutboundPolicy:
    """The operator's outbound policy from --allow-judge-host / --judge-key-env and the environment."""
    return build_policy(getattr(args, "allow_judge_host", None) or [], getattr(args, "judge_key_env", None) or [])


def start_app(services, options: ServeOptions, *, prevent_thread_lock: bool = True, quiet: bool = False) -> RunningApp:
    """Build and launch the app; returns its URLs (and any notice, such as a failed share link)."""
    from app.chain_browser import EXPORTS_DIR
    from app.render import CSS
    from app.ui import build_ui

    options.check()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_ui(services)
    exports = services.home / EXPORTS_DIR
    exports.mkdir(parents=True, exist_ok=True)
    try:
        _, local_url, share_url = demo.launch(
            server_name=options.host, server_port=options.port, share=options.share, auth=options.auth,
            auth_message="MoTE Studio: log in with a user given to --auth.", prevent_thread_lock=prevent_thread_lock,
            quiet=quiet, css=CSS, allowed_paths=[str(exports)], show_error=True)
    except OSError as error:
        raise RuntimeError(f"Cannot serve on {options.host}:{options.port} ({error}): the port is probably in use; "
                           "pass another one with --port, or stop the other app.") from None
    running = RunningApp(demo, local_url, share_url)
    if options.share and not share_url:
        text = (f"The public share link could not be created (the share server is out of reach: no internet?). "
                f"The app keeps serving locally at {local_url}.")
        running.notices.append(text)
        services.notices.append(text)
        print(text, flush=True)
    return running


def _stop_on_sigterm() -> None:
    """SIGTERM (kill, systemd, docker stop) ends the app the way Ctrl-C does: server closed, queue stopped."""
    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def serve(queue, options: ServeOptions) -> int:
    """Start the job queue and the app; block until Ctrl-C or SIGTERM. Running jobs keep running."""
    from app.services import Services

    options.check()
    queue.start()
    _stop_on_sigterm()
    try:
        running = start_app(Services(queue, outbound=options.outbound), options, prevent_thread_lock=True)
        print(f"MoTE Studio at {running.local_url} (data directory {queue.home}). Ctrl-C stops the app; "
              "running jobs keep running and are picked up again at the next start.", flush=True)
        running.demo.block_thread()
    except KeyboardInterrupt:  # stopped while still starting (block_thread handles it afterwards)
        pass
    finally:
        queue.shutdown()
    print("MoTE Studio stopped; running jobs go on and the next start picks them up.", flush=True)
    return 0
