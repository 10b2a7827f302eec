"""Secrets stay home: URLs and key variables from UI/API callers follow the operator's policy.

The probe from issue 19: an /evaluate request naming HOME as the judge's key variable and a URL
of the caller's choosing made the server send "Bearer /root" to that URL. Here a real listener on
127.0.0.1 records every request it receives, so "refused" means nothing reached it.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli.ui import outbound_policy
from app.services import Services
from core.evaluation.judge_config import JudgeConfig, build_checked_judge
from core.outbound import LOOPBACK_ONLY, OPERATOR, HostRule, OutboundPolicy, OutboundRefused, build_policy
from core.synthesis.http_generator import EndpointError, OpenAIChatClient
from jobs.lifecycle import REJECTED_AT_SUBMIT
from jobs.queue import JobQueue
from jobs.records import Job
from jobs.specs import JobConfigError
import launch
from tests.hub_cache import use_hub_cache

SECRET_ENV, SECRET = "MOTE_TEST_JUDGE_KEY", "sk-test-secret-value"
REPLY = {"choices": [{"message": {"content": "OK"}, "finish_reason": "stop"}], "usage": {"completion_tokens": 1}}


class Listener:
    """A loopback HTTP server that records (path, Authorization) of every request and answers
    like an OpenAI-compatible endpoint (or with a redirect, when `redirect_to` is set)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str | None]] = []
        self.redirect_to: str | None = None
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - a followed 302 arrives as a GET
                listener.received.append((self.path, self.headers.get("Authorization")))
                self.send_response(404)
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                listener.received.append((self.path, self.headers.get("Authorization")))
                if listener.redirect_to:
                    self.send_response(302)  # urllib follows it as a GET, Authorization header included
                    self.send_header("Location", listener.redirect_to)
                    self.end_headers()
                    return
                body = json.dumps(REPLY).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def other_listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def queue(tmp_path) -> Iterator[JobQueue]:
    queue = JobQueue(f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home")
    yield queue
    queue.engine.dispose()


def http_judge(url: str, key_env: str | None) -> dict:
    """What the Evaluate tab's HTTP judge fields turn into (app/tabs/evaluate.py)."""
    return {"kind": "http", "url": url, "model_name": "judge", "api_key_env": key_env}


def evaluate(services: Services, judge: dict) -> int:
    return services.evaluation.launch_evaluation(["base:tiny-model"], [], {"limit": 1}, [judge])


def run_stored_judges(services: Services, job_id: int) -> None:
    """What the worker does first with a stored evaluate job: build and check every judge."""
    job = services.queue.get(job_id)
    for record in job.config["judges"]:
        build_checked_judge(JudgeConfig.from_dict(record))


# ---- the probe from the issue ----------------------------------------------------------------
def test_naming_home_as_the_key_is_refused_and_nothing_is_sent(queue, listener, monkeypatch):
    monkeypatch.setenv("HOME", "/root")
    services = Services(queue, default_model="tiny-model")  # the default: loopback only, no key variables
    with pytest.raises(JobConfigError, match="key variable 'HOME' is not one the operator allowed"):
        evaluate(services, http_judge(listener.url, "HOME"))
    assert listener.received == []


def test_an_unset_and_a_set_variable_get_the_same_refusal(queue, monkeypatch):
    """A caller cannot probe which variables exist."""
    monkeypatch.delenv("MOTE_SURELY_UNSET", raising=False)
    services = Services(queue, default_model="tiny-model")
    messages = []
    for name in ("HOME", "MOTE_SURELY_UNSET"):
        with pytest.raises(JobConfigError) as error:
            evaluate(services, http_judge("http://127.0.0.1:9/v1", name))
        messages.append(str(error.value).replace(name, "X"))
    assert messages[0] == messages[1]


def test_a_url_outside_the_allowed_hosts_is_refused(queue):
    services = Services(queue, default_model="tiny-model")
    with pytest.raises(JobConfigError, match="host collector.example is not allowed"):
        evaluate(services, http_judge("http://collector.example:8000/v1", None))


def test_an_allowed_key_reaches_its_allowed_host(queue, listener, monkeypatch):
    use_hub_cache(monkeypatch, queue.home / "hub", "tiny-model")  # the base model, as if downloaded
    monkeypatch.setenv(SECRET_ENV, SECRET)
    policy = build_policy(key_envs=[f"{SECRET_ENV}=127.0.0.1:{listener.port}"], environ={})
    services = Services(queue, default_model="tiny-model", outbound=policy)
    job_id = evaluate(services, http_judge(listener.url, SECRET_ENV))
    run_stored_judges(services, job_id)
    assert listener.received == [("/v1/chat/completions", f"Bearer {SECRET}")]


def test_an_allowed_key_is_never_sent_to_another_host(queue, listener, other_listener, monkeypatch):
    """Bound to one host:port, the key is refused for another port on the same loopback host."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    policy = build_policy(key_envs=[f"{SECRET_ENV}=127.0.0.1:{listener.port}"], environ={})
    services = Services(queue, default_model="tiny-model", outbound=policy)
    with pytest.raises(JobConfigError, match=f"the key {SECRET_ENV} is only sent to 127.0.0.1:{listener.port}"):
        evaluate(services, http_judge(other_listener.url, SECRET_ENV))
    assert other_listener.received == [] and listener.received == []


def test_a_refused_config_cannot_be_retried_into_the_queue(queue, listener):
    """A refused submit is stored as a failed job for history; retrying it would queue the config unchecked."""
    services = Services(queue, default_model="tiny-model")
    with pytest.raises(JobConfigError) as error:
        evaluate(services, http_judge(listener.url, "HOME"))
    rejected = queue.get(error.value.job_id)
    assert rejected.message == REJECTED_AT_SUBMIT
    with pytest.raises(ValueError, match="rejected at submit"):
        services.retry_job(rejected.id)
    with queue.sessions() as session:
        assert session.query(Job).count() == 1


def test_generator_endpoints_follow_the_same_policy(queue, listener, monkeypatch):
    services = Services(queue, default_model="tiny-model")
    settings = {"generator": "openai", "endpoint_url": listener.url, "endpoint_model": "m", "api_key_env": "HOME"}
    with pytest.raises(JobConfigError, match="generate.api_key_env|key variable 'HOME'"):
        services.launch_generation("train", settings=settings)
    with pytest.raises(JobConfigError, match="not allowed"):
        services.launch_generation("train", settings={**settings, "api_key_env": None,
                                                      "endpoint_url": "https://collector.example/v1"})
    assert listener.received == []


def test_the_operator_cli_is_not_restricted(queue, listener, monkeypatch):
    """The operator's own `jobs submit` (no policy) may name any URL and key they hold."""
    use_hub_cache(monkeypatch, queue.home / "hub", "tiny-model")  # the base model, as if downloaded
    monkeypatch.setenv(SECRET_ENV, SECRET)
    job_id = queue.submit("evaluate", {"subjects": [{"base": "tiny-model"}], "settings": {"limit": 1},
                                       "judges": [http_judge(listener.url, SECRET_ENV)]})
    assert queue.get(job_id).config["judges"][0]["api_key_env"] == SECRET_ENV


def test_a_redirect_does_not_carry_the_key_elsewhere(listener, other_listener, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    listener.redirect_to = other_listener.url + "/chat/completions"
    client = OpenAIChatClient(listener.url, "judge", api_key_env=SECRET_ENV, retries=0)
    with pytest.raises(EndpointError, match="redirects are not followed"):
        client.check()
    assert other_listener.received == []


# ---- the policy itself ------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost/v1", "http://[::1]:9/v1",
                                 "https://127.5.6.7/v1"])
def test_loopback_is_allowed_without_a_key_by_default(url):
    LOOPBACK_ONLY.check(url)


@pytest.mark.parametrize("url, message", [
    ("http://10.0.0.5:8000/v1", "not allowed"),
    ("http://127.0.0.1.nip.io/v1", "not allowed"),  # names are never resolved, so never assumed local
    ("file:///etc/passwd", "not an http"),
    ("http://user:pw@127.0.0.1/v1", "user name or password"),
    ("http://127.0.0.1:99999/v1", "invalid port"),
])
def test_other_urls_are_refused(url, message):
    with pytest.raises(OutboundRefused, match=message):
        LOOPBACK_ONLY.check(url)


def test_allowed_hosts_and_ports():
    policy = build_policy(allow_hosts=["judge.internal:8000", "api.example.com"], environ={})
    policy.check("http://judge.internal:8000/v1")
    policy.check("https://API.example.com/v1")
    with pytest.raises(OutboundRefused):
        policy.check("http://judge.internal:8001/v1")


def test_key_bindings_from_flags_and_environment():
    policy = build_policy(allow_hosts=["api.example.com"], key_envs=["A_KEY"],
                          environ={"MOTE_ALLOWED_KEY_ENVS": "B_KEY=b.example.com:443,127.0.0.1:8000"})
    assert policy.keys == {"A_KEY": (HostRule("api.example.com"),),
                           "B_KEY": (HostRule("b.example.com", 443), HostRule("127.0.0.1", 8000))}
    policy.check("https://b.example.com/v1", "B_KEY")
    with pytest.raises(OutboundRefused, match="only sent to api.example.com"):
        policy.check("https://b.example.com/v1", "A_KEY")


def test_a_bare_key_name_without_any_host_is_refused_at_launch():
    with pytest.raises(ValueError, match="names no host"):
        build_policy(key_envs=["OPENAI_API_KEY"], environ={})


def test_operator_policy_checks_nothing():
    OPERATOR.check("http://anywhere.example/v1", "HOME")
    assert OutboundPolicy() == LOOPBACK_ONLY


def test_launch_flags_build_the_policy(monkeypatch):
    monkeypatch.delenv("MOTE_ALLOWED_JUDGE_HOSTS", raising=False)
    monkeypatch.delenv("MOTE_ALLOWED_KEY_ENVS", raising=False)
    args = launch.build_parser().parse_args(
        ["ui", "--allow-judge-host", "judge.internal", "--judge-key-env", "OPENAI_API_KEY=api.openai.com"])
    policy = outbound_policy(args)
    assert policy.hosts == (HostRule("judge.internal"),)
    assert policy.keys == {"OPENAI_API_KEY": (HostRule("api.openai.com"),)}


# ---- the probe itself, through the app's real /evaluate endpoint ----------------------------------
def test_the_evaluate_endpoint_refuses_home_and_the_listener_hears_nothing(queue, listener, monkeypatch, tiny_dir):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from app.launcher import ServeOptions, start_app
    from tests.app.conftest import free_port

    monkeypatch.setenv("HOME", "/root")
    services = Services(queue, default_model=str(tiny_dir))  # default policy: what `launch.py` gets with no flags
    running = start_app(services, ServeOptions(port=free_port()), quiet=True)
    try:
        client = Client(running.local_url, verbose=False, download_files=False)
        subjects, sets, _jobs, _runs = client.predict(api_name="/evaluation_choices")
        args = ([subjects["choices"][0][1]], [sets["choices"][0][1]], 1, 0, 3, ["HTTP LLM judge"], "")
        with pytest.raises(AppError, match="key variable 'HOME' is not one the operator allowed"):
            client.predict(*args, listener.url, "judge", "HOME", api_name="/evaluate")
        with pytest.raises(AppError, match="host collector.example is not allowed"):
            client.predict(*args, "http://collector.example/v1", "judge", "", api_name="/evaluate")
    finally:
        running.demo.close()
    assert listener.received == []
