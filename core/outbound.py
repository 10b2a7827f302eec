"""Where the app may send requests on a caller's behalf, and which API keys may go with them.

Why one policy: a judge URL, a generator endpoint or any other URL typed into the UI or sent to
the app's API makes the server open a connection, and a named key variable makes it send that
variable's value as a bearer token. Left open, any caller could name HOME or OPENAI_API_KEY and a
URL of their own and collect the value. So the operator decides at launch which hosts may be
contacted (loopback only by default) and which key variables exist for callers, each bound to the
host(s) it was issued for; caller input is checked against that, and nothing else is read.

The operator's own command line (`launch.py evaluate --judge-url ...`, `jobs submit`) is not
checked: whoever runs it already holds the shell and the environment.
"""
from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ALLOWED_HOSTS_ENV = "MOTE_ALLOWED_JUDGE_HOSTS"
"""Comma-separated hosts (HOST or HOST:PORT) callers may name, besides loopback."""
ALLOWED_KEYS_ENV = "MOTE_ALLOWED_KEY_ENVS"
"""Semicolon-separated key bindings NAME=HOST[,HOST...] callers may name."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOOPBACK_NAMES = ("localhost",)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class OutboundRefused(ValueError):
    """A URL or key variable the operator did not allow; the message says what the operator can pass."""


@dataclass(frozen=True)
class HostRule:
    """One allowed host, optionally pinned to a port (None: any port)."""

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> HostRule:
        """'api.openai.com', 'api.openai.com:443', '10.0.0.5:8000' or '[::1]:8000'."""
        text = text.strip().lower()
        if not text or "/" in text or "@" in text:
            raise ValueError(f"{text!r} is not a host: give HOST or HOST:PORT, e.g. api.openai.com or 127.0.0.1:8000.")
        parts = urlsplit(f"//{text}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{text!r} has no valid port: give HOST or HOST:PORT with a port in 1-65535.") from None
        if not parts.hostname:
            raise ValueError(f"{text!r} is not a host: give HOST or HOST:PORT, e.g. api.openai.com.")
        return cls(parts.hostname, port)

    def matches(self, host: str, port: int) -> bool:
        return host == self.host and (self.port is None or self.port == port)

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Destination:
    """The host and port a URL connects to (default port by scheme)."""

    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Destination:
        parts = urlsplit(url.strip())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise OutboundRefused(f"{url!r} is not an http:// or https:// URL with a host: e.g. http://127.0.0.1:8000/v1.")
        if parts.username or parts.password:
            raise OutboundRefused(f"{url!r} carries a user name or password: drop it; keys go in key variables.")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise OutboundRefused(f"{url!r} has an invalid port: use 1-65535.") from None
        return cls(parts.hostname.lower(), port)

    @property
    def is_loopback(self) -> bool:
        if self.host in _LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a name other than localhost: never resolved, so never assumed local
            return False


@dataclass(frozen=True)
class OutboundPolicy:
    """Hosts callers may make the server contact, and key variables callers may name.

    `allow_loopback`: 127.0.0.0/8, ::1 and 'localhost' are allowed for keyless requests.
    `hosts`: further hosts allowed for keyless requests.
    `keys`: key variable name -> the only hosts its value is ever sent to.
    `unrestricted`: the operator's own command line; nothing is checked.
    """

    allow_loopback: bool = True
    hosts: tuple[HostRule, ...] = ()
    keys: Mapping[str, tuple[HostRule, ...]] = field(default_factory=dict)
    unrestricted: bool = False

    def check(self, url: str, key_env: str | None = None, *, what: str = "URL") -> None:
        """Raise OutboundRefused unless `url` (and `key_env`, if named) is allowed for callers."""
        if self.unrestricted:
            return
        destination = Destination.of(url)
        if key_env:
            self._check_key(destination, url, key_env, what)
        elif not self._host_allowed(destination):
            raise OutboundRefused(
                f"{what} {url!r}: host {destination.host} is not allowed. This server only contacts "
                f"{self.describe_hosts()}; the operator can add one at launch with --allow-judge-host HOST[:PORT]."
            )

    def check_key_name(self, key_env: str, *, what: str = "api_key_env") -> tuple[HostRule, ...]:
        """The hosts `key_env` is bound to; OutboundRefused when callers may not name it."""
        rules = self.keys.get(key_env)
        if rules is None:  # the same answer whether or not the variable exists: no probing
            allowed = ", ".join(sorted(self.keys)) or "none"
            raise OutboundRefused(
                f"{what}: key variable {key_env!r} is not one the operator allowed (allowed: {allowed}). "
                "The operator can allow one at launch with --judge-key-env NAME=HOST."
            )
        return rules

    def _check_key(self, destination: Destination, url: str, key_env: str, what: str) -> None:
        rules = self.check_key_name(key_env, what=what)
        if not any(rule.matches(destination.host, destination.port) for rule in rules):
            raise OutboundRefused(
                f"{what} {url!r}: the key {key_env} is only sent to {', '.join(map(str, rules))}; "
                "use that URL, or the operator can bind it to another host with --judge-key-env NAME=HOST."
            )

    def _host_allowed(self, destination: Destination) -> bool:
        if self.allow_loopback and destination.is_loopback:
            return True
        rules = [*self.hosts, *(rule for bound in self.keys.values() for rule in bound)]  # a key's host is trusted
        return any(rule.matches(destination.host, destination.port) for rule in rules)

    def describe_hosts(self) -> str:
        names = (["loopback (127.0.0.1, ::1, localhost)"] if self.allow_loopback else []) + [str(r) for r in self.hosts]
        return ", ".join(names) or "no host"


OPERATOR = OutboundPolicy(unrestricted=True)
"""The operator's own command line: their URLs and keys are used as given."""
LOOPBACK_ONLY = OutboundPolicy()
"""The default for callers of the app: keyless requests to loopback only."""


def parse_key_binding(text: str, default_hosts: Iterable[HostRule] = ()) -> tuple[str, tuple[HostRule, ...]]:
    """'NAME=HOST[,HOST...]' -> (NAME, hosts). A bare NAME binds to `default_hosts` (the hosts given
    with --allow-judge-host); with none, the binding must name its host."""
    name, sep, hosts_text = text.strip().partition("=")
    name = name.strip()
    if not _ENV_NAME.match(name):
        raise ValueError(f"--judge-key-env {text!r}: {name!r} is not an environment variable name: "
                         "give NAME=HOST, e.g. OPENAI_API_KEY=api.openai.com.")
    hosts = tuple(HostRule.parse(h) for h in hosts_text.split(",") if h.strip()) if sep else tuple(default_hosts)
    if not hosts:
        raise ValueError(f"--judge-key-env {text!r} names no host to send the key to: write {name}=HOST "
                         f"(e.g. {name}=api.openai.com), or add --allow-judge-host HOST.")
    return name, hosts


def build_policy(allow_hosts: Iterable[str] = (), key_envs: Iterable[str] = (),
                 environ: Mapping[str, str] | None = None) -> OutboundPolicy:
    """The policy from launch flags plus MOTE_ALLOWED_JUDGE_HOSTS / MOTE_ALLOWED_KEY_ENVS.

    Raises ValueError naming the bad flag. A bound key variable that is unset is allowed here (it
    may be exported later for workers); using it fails with "not set" at submit."""
    environ = os.environ if environ is None else environ
    host_texts = [*allow_hosts, *(h for h in environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip())]
    hosts = tuple(dict.fromkeys(HostRule.parse(h) for h in host_texts))
    key_texts = [*key_envs, *(k for k in environ.get(ALLOWED_KEYS_ENV, "").split(";") if k.strip())]
    keys: dict[str, tuple[HostRule, ...]] = {}
    for text in key_texts:
        name, rules = parse_key_binding(text, hosts)
        keys[name] = tuple(dict.fromkeys([*keys.get(name, ()), *rules]))
    return OutboundPolicy(hosts=hosts, keys=keys)
