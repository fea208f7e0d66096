"""Where an `http` step may connect (SSRF protection, docs/workflows.md).

A workflow author controls step URLs, and the runner runs inside the cluster, so a URL could
otherwise reach the cloud metadata service (node credentials) or internal services. Link-local
and metadata addresses are always refused; private and loopback ranges are refused when
`RUNNER_DENY_PRIVATE_NETWORKS=1` (set in the cluster). The host is resolved and *every* address
is checked, so a name that resolves to a mix of public and internal addresses is refused.

Known limit: the check and the connection resolve the name separately, so a DNS server that
answers differently within milliseconds (DNS rebinding) is not stopped here; the cluster's
network policy is the second line of defence.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[str]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
     ipaddress.ip_address("100.100.100.200")}
)
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
PRIVATE = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("fc00::/7"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("::/128"),
)


class NetworkPolicyError(Exception):
    """The URL may not be fetched; the message says why (one line, no query string)."""


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches: mapped, NAT64, 6to4 or IPv4-compatible forms."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64 or int(address) >> 32 == 0:  # 64:ff9b::a.b.c.d, ::a.b.c.d
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def blocked_reason(address: Address, deny_private: bool) -> str | None:
    """Why `address` is refused, or None when it is allowed (pure)."""
    if isinstance(address, ipaddress.IPv6Address):
        address = embedded_ipv4(address) or address
    if address in METADATA_ADDRESSES:
        return "cloud metadata address"
    if any(address in network for network in LINK_LOCAL):
        return "link-local address"
    if deny_private and any(address in network for network in PRIVATE):
        return "private or loopback address (RUNNER_DENY_PRIVATE_NETWORKS=1)"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


def check_url(url: str, deny_private: bool, resolve: Resolver = system_resolver) -> None:
    """Raise NetworkPolicyError unless `url` is http(s) and every address of its host is allowed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise NetworkPolicyError(f"only http and https URLs are allowed, got {scheme or 'no'} scheme")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise NetworkPolicyError("the URL has no host")
    if host in METADATA_HOSTS:
        raise NetworkPolicyError(f"refusing to connect to {host}: cloud metadata host")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            port = parts.port or (443 if scheme == "https" else 80)
            addresses = [ipaddress.ip_address(a) for a in resolve(host, port)]
        except (OSError, UnicodeError, ValueError) as error:
            raise NetworkPolicyError(f"cannot resolve {host}: {error}") from None
    if not addresses:
        raise NetworkPolicyError(f"cannot resolve {host}: no addresses")
    for address in addresses:
        reason = blocked_reason(address, deny_private)
        if reason:
            raise NetworkPolicyError(f"refusing to connect to {host} ({address}): {reason}")
