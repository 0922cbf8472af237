"""Who a request comes from, as the throttle counts it and as hashing turns are taken.

The client is the connection's peer, unless that peer is one of `HEROAPI_TRUSTED_PROXIES`: then
it is the right-most `X-Forwarded-For` entry that is not a trusted proxy (entries further left
are whatever the client wrote; an entry that is not an address is where trust stops, and the
hop that wrote it is the client). An IPv6 address that carries an IPv4 one (IPv4-mapped
`::ffff:a.b.c.d`, as a dual-stack listener reports IPv4 clients; 6to4; Teredo) is that IPv4
address, wherever an address is met. IPv6 clients are counted by their /64, which one client
commonly holds whole, and take hashing turns by their /48, the most one site is commonly given:
a client gains no turns by spreading its attempts over the addresses it holds.

`middleware.proxies.ProxiedRequests` applies this once per request, before anything else sees
it: a request a trusted proxy forwards gets the client and scheme the proxy reports
(`X-Forwarded-For`, `X-Forwarded-Proto`), and is marked `PROXIED`, so the links it answers with
may take the host the client asked the proxy for (`X-Forwarded-Host`: `routes/origin.py`).
Everything after (the access log, the throttle, the links) then agrees on who asks and where.
"""

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from starlette.types import Scope

IPV6_COUNTED_PREFIX: Final = 64
IPV6_TURN_PREFIX: Final = 48
# Set in the scope of a request a trusted proxy forwarded (`middleware.proxies`).
PROXIED: Final = "heroapi.proxied"
# What every client that names no address is counted as (a peer that is not an IP address).
UNIDENTIFIED: Final = "unidentified"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")


@dataclass(frozen=True)
class Client:
    """Who asks, as the limits see it: `key` is what is counted, `turn` what takes turns."""

    key: str
    turn: str


def unwrapped(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, 6to4, Teredo's client), else itself."""
    if address.version == 6:
        assert isinstance(address, ipaddress.IPv6Address)
        carried = address.ipv4_mapped or address.sixtofour
        if carried is None and address.teredo is not None:
            carried = address.teredo[1]
        if carried is not None:
            return carried
    return address


def _address(text: str) -> Address | None:
    """The address in an `X-Forwarded-For` entry or a peer (`a.b.c.d`, `a.b.c.d:port`, an IPv6
    address, `[v6]:port`), unwrapped; None for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return unwrapped(ipaddress.ip_address(text))
    except ValueError:
        return None


def _network(entry: str) -> Network:
    """A trusted proxy's network; an IPv4-mapped IPv6 network is the IPv4 one it maps."""
    network = ipaddress.ip_network(entry, strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(_network(entry) for entry in entries)


def _peer(scope: Scope) -> Address | None:
    """The connection's peer, as the ASGI server reports it, unwrapped."""
    entry = scope.get("client")
    return _address(entry[0]) if entry else None


def trusted_peer(scope: Scope, trusted_proxies: Sequence[str]) -> bool:
    """Whether the request's peer is one of `trusted_proxies` (`HEROAPI_TRUSTED_PROXIES`)."""
    if not trusted_proxies:
        return False
    peer = _peer(scope)
    return peer is not None and any(
        peer in network for network in _networks(tuple(trusted_proxies))
    )


def _grouped(address: Address, prefix: int) -> str:
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
    return str(address)


class Clients:
    """Who asks, for one app's `HEROAPI_TRUSTED_PROXIES`."""

    def __init__(self, trusted_proxies: list[str]) -> None:
        self.trusted_proxies = tuple(trusted_proxies)
        self._trusted = _networks(self.trusted_proxies)

    def _trusted_proxy(self, address: Address) -> bool:
        return any(address in network for network in self._trusted)

    def address(self, scope: Scope) -> Address | None:
        """The client's address (see the module's docstring); None if it names none."""
        peer = _peer(scope)
        if peer is not None and self._trusted and self._trusted_proxy(peer):
            forwarded = [
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"x-forwarded-for"
            ]
            hops = [hop for header in forwarded for hop in header.split(",")]
            for hop in reversed(hops):
                address = _address(hop)
                if address is None:
                    break  # not an address: trust nothing further left, count the hop before
                peer = address
                if not self._trusted_proxy(address):
                    break
        return peer

    def of(self, scope: Scope) -> Client:
        """Who the limits count the request against (see the module's docstring)."""
        peer = self.address(scope)
        if peer is None:
            # Not an IP address (a Unix socket): all such clients are one, not one per name.
            return Client(UNIDENTIFIED, UNIDENTIFIED)
        return Client(_grouped(peer, IPV6_COUNTED_PREFIX), _grouped(peer, IPV6_TURN_PREFIX))
