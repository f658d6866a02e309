"""Where metric providers may send requests, and how much they may read back (I/O).

A metric's address is written by whoever can create an AnalysisTemplate, and the controller
stores what it reads (the web provider keeps the body as the measurement's value). Without a
policy, a template could point the controller at the cloud's instance-metadata service and
publish its credentials in the AnalysisRun's status. So every request a provider makes, and
the target of every redirect, is checked here first:

* only `http` and `https` (httpx speaks nothing else; the check makes the error clear);
* never a link-local address (169.254.0.0/16, fe80::/10) nor a known cloud-metadata address
  or name (fd00:ec2::254, 100.100.100.200, metadata.google.internal, ...), whether written
  as an IP literal or reached through a name that resolves to one; unless the network is
  allowed by the controller's `--allow-metric-address CIDR`;
* at most `max_redirects` redirects, credentials given as `auth` only sent to the origin
  the metric named (httpx itself drops `Authorization` headers across origins);
* at most `max_response_bytes` of body.

A name is resolved here and again by the connection, so a DNS server that answers
differently the second time (rebinding) could slip past; a NetworkPolicy on the controller's
egress is the complete answer and docs/operations.md says so. A name that does not resolve
is let through: the request fails on its own with a connection error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

import httpx

__all__ = [
    "DENIED_HOSTNAMES",
    "DENIED_NETWORKS",
    "EgressDenied",
    "EgressPolicy",
    "ResponseTooLarge",
    "fetch",
    "parse_networks",
]

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver: TypeAlias = Callable[[str], Awaitable[Sequence[str]]]

DENIED_NETWORKS: Final[tuple[Network, ...]] = tuple(
    ipaddress.ip_network(text)
    for text in (
        "169.254.0.0/16",  # link-local, AWS/GCP/Azure/OpenStack metadata at 169.254.169.254
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "0.0.0.0/8",  # "this host": connects to the local machine on Linux
    )
)
DENIED_HOSTNAMES: Final = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
    }
)
ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
DEFAULT_MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
DEFAULT_MAX_REDIRECTS: Final = 5


class EgressDenied(Exception):
    """The policy refuses this URL (the message says why, naming the address)."""


class ResponseTooLarge(Exception):
    """The body was longer than the policy allows."""


async def _resolve(host: str) -> Sequence[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return ()
    return [str(info[4][0]) for info in infos]


def parse_networks(texts: Sequence[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) from the command line; ValueError names a bad one."""
    networks: list[Network] = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"--allow-metric-address {text!r} is not a CIDR or an IP address"
            ) from None
    return tuple(networks)


@dataclass(frozen=True)
class EgressPolicy:
    """What the controller's configuration allows; one instance shared by all providers."""

    allowed_networks: tuple[Network, ...] = ()
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    resolver: Resolver = field(default=_resolve, compare=False)

    def _allowed(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed_networks):
            return True
        return not any(address in network for network in DENIED_NETWORKS)

    async def check(self, url: httpx.URL) -> None:
        """Raise EgressDenied if a request to `url` is not allowed."""
        if url.scheme not in ALLOWED_SCHEMES:
            raise EgressDenied(f"scheme {url.scheme!r} is not allowed (only http and https)")
        host = url.host.rstrip(".").lower()
        if not host:
            raise EgressDenied(f"{url} has no host")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            if host in DENIED_HOSTNAMES and not self.allowed_networks:
                raise EgressDenied(f"{host} is a cloud metadata service")
            addresses = []
            for text in await self.resolver(host):
                try:
                    addresses.append(ipaddress.ip_address(text.split("%")[0]))
                except ValueError:
                    continue
        for address in addresses:
            if not self._allowed(address):
                raise EgressDenied(
                    f"{host} ({address}) is a link-local or cloud-metadata address; "
                    "allow it with the controller's --allow-metric-address"
                )


async def fetch(
    client: httpx.AsyncClient,
    policy: EgressPolicy,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    content: bytes | None = None,
    auth: httpx.Auth | None = None,
    timeout: float | None = None,
) -> httpx.Response:
    """Send one request under `policy`: every hop checked, redirects followed by hand, the
    body read up to the size limit. The answer's body is in memory (`.content`).

    Raises EgressDenied, ResponseTooLarge, httpx.TooManyRedirects or an httpx.HTTPError.
    """
    request = client.build_request(
        method, url, headers=headers, params=params, data=data, content=content,
        timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
    )
    origin = (request.url.scheme, request.url.host, request.url.port)
    for _ in range(policy.max_redirects + 1):
        await policy.check(request.url)
        same_origin = (request.url.scheme, request.url.host, request.url.port) == origin
        response = await client.send(
            request,
            auth=auth if auth is not None and same_origin else httpx.USE_CLIENT_DEFAULT,
            stream=True,
            follow_redirects=False,
        )
        try:
            if response.is_redirect and response.next_request is not None:
                request = response.next_request
                continue
            body = await _read_capped(response, policy.max_response_bytes)
        finally:
            await response.aclose()
        # The body is decoded already: drop the headers that would have it decoded again.
        kept = [
            (k, v) for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code,
            headers=kept,
            content=body,
            request=response.request,
            extensions={"reason_phrase": response.reason_phrase.encode()},
        )
    raise httpx.TooManyRedirects(
        f"more than {policy.max_redirects} redirects from {url}", request=request
    )


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(f"the answer is {declared} bytes, more than the {limit} allowed")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(f"the answer is more than the {limit} bytes allowed")
        chunks.append(chunk)
    return b"".join(chunks)
