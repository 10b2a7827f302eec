"""Who can reach the app: the rule that an app beyond loopback needs a login, and the URLs it
really listens on.

Why refuse: the app starts jobs, reads files under its data directory and loads models; on
`--host 0.0.0.0` without --auth anyone on the network could (Gradio's own guidance: an app on
0.0.0.0 is public). An operator who knows the network is private says so with --insecure-public.
Why list every address: on 0.0.0.0 Gradio prints "localhost", which hides that the app is
reachable from other machines and gives them no URL to use.
"""
from __future__ import annotations

import ipaddress
import socket

import psutil

from core.serving.access import is_loopback

#: Hosts that mean "every interface" (IPv4, IPv6, and an empty server name).
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
INSECURE_PUBLIC_FLAG = "--insecure-public"


def is_loopback_host(host: str) -> bool:
    """True when only this machine can reach `host`: a loopback address, or a name that resolves
    to loopback addresses only (e.g. 'localhost'); unresolvable names count as public."""
    if is_loopback(host):
        return True
    if host.strip("[]") in WILDCARD_HOSTS:
        return False
    try:
        ipaddress.ip_address(host.strip("[]"))
        return False  # an address that is not loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def public_without_login_message(host: str) -> str:
    """The refusal for a host beyond loopback with no --auth: what is exposed and how to proceed."""
    return (f"--host {host} makes the app reachable from other machines, and without a login anyone who can reach "
            "it can start jobs, read files under the data directory and load models. Add --auth USER:PASS "
            "(or --auth FILE, one USER:PASS per line), e.g. `python launch.py --host "
            f"{host} --auth alice:a-long-password`; or keep the default --host 127.0.0.1. If this network is "
            f"private and you accept the risk, pass {INSECURE_PUBLIC_FLAG}.")


def public_without_login_warning(host: str) -> str:
    return (f"WARNING: {INSECURE_PUBLIC_FLAG}: the app listens on {host} with no login; anyone who can reach "
            "these URLs can start jobs, read files under the data directory and load models.")


def _url(address: str, port: int) -> str:
    address = address.split("%")[0]  # an IPv6 link-local zone is not valid in a URL
    return f"http://[{address}]:{port}/" if ":" in address else f"http://{address}:{port}/"


def _interface_addresses(family: socket.AddressFamily) -> list[str]:
    """This machine's addresses of one family, loopback first; link-local ones (fe80::) are left
    out, since a URL to them only works with the interface named."""
    found = [a.address for entries in psutil.net_if_addrs().values() for a in entries if a.family == family]
    parsed = {address: ipaddress.ip_address(address.split("%")[0]) for address in found}
    usable = [address for address, ip in parsed.items() if not ip.is_link_local]
    return sorted(usable, key=lambda address: not parsed[address].is_loopback)


def listen_urls(host: str, port: int) -> list[str]:
    """Every URL the app answers on: each interface's address for a wildcard host (IPv4 for
    0.0.0.0, IPv6 too for '::'), else the host itself."""
    bare = host.strip("[]")
    if bare not in WILDCARD_HOSTS:
        return [_url(bare, port)]
    addresses = _interface_addresses(socket.AF_INET)
    if bare == "::":
        addresses += _interface_addresses(socket.AF_INET6)
    return [_url(address, port) for address in addresses] or [_url("127.0.0.1", port)]
