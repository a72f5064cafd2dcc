"""NAS clients by address or network, with their shared secret."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# The NAS types vpop renders replies for: templates/reply/<type>.j2 (tunnel/ where needed).
NAS_TYPES = ("generic", "cisco", "mikrotik", "juniper", "accel-ppp", "hostapd")


@dataclass(frozen=True, slots=True, kw_only=True)
class NasClient:
    name: str
    network: IPNetwork
    secret: bytes
    nas_type: str = "generic"
    # 'yes' | 'no' | 'auto' — see MessageAuthenticatorPolicy
    require_message_authenticator: str = "yes"


class ClientTable:
    """Longest-prefix lookup of the client a datagram came from, cached per address."""

    def __init__(self, clients: list[NasClient]):
        self._clients = sorted(clients, key=lambda c: c.network.prefixlen, reverse=True)
        self._cache: dict[str, NasClient | None] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def __iter__(self):
        return iter(self._clients)

    def lookup(self, address: str) -> NasClient | None:
        try:
            return self._cache[address]
        except KeyError:
            pass
        found = None
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            ip = None
        if ip is not None:
            for client in self._clients:
                if ip.version == client.network.version and ip in client.network:
                    found = client
                    break
        if len(self._cache) < 65536:  # bounded: unknown sources cannot grow it forever
            self._cache[address] = found
        return found


class MessageAuthenticatorPolicy:
    """RFC 3579 / BlastRADIUS: who must sign Access-Requests.

    'auto' starts lenient and requires the attribute from the first time a client
    sends one, as FreeRADIUS's require_message_authenticator = auto does.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def required(self, client: NasClient) -> bool:
        mode = client.require_message_authenticator
        return mode == "yes" or (mode == "auto" and client.name in self._seen)

    def saw(self, client: NasClient) -> None:
        if client.require_message_authenticator == "auto":
            self._seen.add(client.name)
