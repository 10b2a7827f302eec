"""Serving the Gradio app: host, port, share link and login around build_ui, and the app process's
lifetime (job queue started with it, stopped on Ctrl-C or SIGTERM). The `ui` verb (cli/ui.py)
turns flags into ServeOptions and calls serve_app.

Why a share link needs a login: --share publishes the app on a public gradio.live address, and
the app can start jobs, read files under its data directory and load models; without a login
anyone with the link could. When the share server cannot be reached (no internet), Gradio keeps
serving locally; the app says so in the terminal and in a banner on the page.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

from app.exposure import is_loopback_host, listen_urls, public_without_login_message, public_without_login_warning
from app.upload_folder import use_upload_folder
from app.demo_options import DemoOptions
from core.outbound import LOOPBACK_ONLY, OutboundPolicy

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
    insecure_public: bool = False
    """The operator accepts serving beyond loopback with no login (--insecure-public)."""
    demo: DemoOptions | None = None
    """Serve the read-only demo page (app/demo.py) instead of the workbench."""

    def check(self) -> None:
        if self.share and not self.auth:
            raise ValueError(SHARE_NEEDS_AUTH)
        if not self.auth and not self.insecure_public and not is_loopback_host(self.host):
            raise ValueError(public_without_login_message(self.host))
        if not (1 <= self.port <= 65535):
            raise ValueError(f"--port {self.port} is not a TCP port: use 1-65535 (default {DEFAULT_PORT}).")


@dataclass
class RunningApp:
    demo: object
    local_url: str
    share_url: str | None
    notices: list[str] = field(default_factory=list)


def start_app(services, options: ServeOptions, *, prevent_thread_lock: bool = True, quiet: bool = False) -> RunningApp:
    """Build and launch the app; returns its URLs (and any notice, such as a failed share link)."""
    from app.chain_browser import EXPORTS_DIR
    from app.render import CSS
    from app.ui import build_ui

    options.check()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    use_upload_folder(services.home)  # before the Blocks are built: Gradio reads the folder then
    if options.demo is not None:
        from app.demo import build_demo

        demo = build_demo(services, options.demo)
    else:
        demo = build_ui(services)
    exports = services.home / EXPORTS_DIR
    exports.mkdir(parents=True, exist_ok=True)
    try:
        _, local_url, share_url = demo.launch(
            server_name=options.host, server_port=options.port, share=options.share, auth=options.auth,
            auth_message="MoTE Studio: log in with a user given to --auth.", prevent_thread_lock=prevent_thread_lock,
            quiet=quiet, css=CSS, allowed_paths=[str(exports)],
            show_error=options.demo is None)  # a demo visitor reads our messages, never a stray traceback
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


def _print_urls(running: RunningApp, options: ServeOptions, home) -> None:
    """The URLs the app really answers on (every interface address on 0.0.0.0, not Gradio's
    'localhost'), and a warning when it does so with no login."""
    urls = listen_urls(options.host, options.port)
    if options.share and running.share_url:
        urls.append(running.share_url)
    mode = " (read-only demo)" if options.demo else ""
    print(f"MoTE Studio{mode} at {', '.join(urls)} (data directory {home}). Ctrl-C stops the app; "
          "running jobs keep running and are picked up again at the next start.", flush=True)
    if not options.auth and not is_loopback_host(options.host):
        print(public_without_login_warning(options.host), flush=True)


def serve_app(queue, options: ServeOptions) -> int:
    """Start the job queue and the app; block until Ctrl-C or SIGTERM. Running jobs keep running."""
    from app.services import Services

    options.check()
    queue.start(beside_app=True)  # CPU jobs leave the pages a core
    _stop_on_sigterm()
    try:
        running = start_app(Services(queue, outbound=options.outbound), options, prevent_thread_lock=True)
        _print_urls(running, options, queue.home)
        running.demo.block_thread()
    except KeyboardInterrupt:  # stopped while still starting (block_thread handles it afterwards)
        pass
    finally:
        queue.shutdown()
    print("MoTE Studio stopped; running jobs go on and the next start picks them up.", flush=True)
    return 0
