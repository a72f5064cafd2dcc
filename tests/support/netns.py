"""Two network namespaces joined by a veth pair: a wired LAN for a real NAS and its
supplicant, each in a namespace of its own, that a test makes and deletes.

    with WiredLink() as link:
        link.nas.command(["hostapd", ...])      # argv that runs inside the NAS's namespace
        sock = link.nas.socket(socket.SOCK_DGRAM)  # a socket inside it, made from here
        link.nas_interface, link.supplicant_interface

    with WiredLink(uplink=True) as link:        # and a routed link to this host
        link.host_address, link.nas_address     # each end's address, one /30

Nothing here leaves this machine: each namespace has its loopback and its end of the
veth, and no route anywhere else. The uplink is a second veth pair between this
host's namespace and the NAS's, with an address on each end from the benchmarking
range (198.18.0.0/15, RFC 2544): a server on this host reaches the NAS at
`nas_address`, and the NAS reaches it at `host_address`, as a NAS and its RADIUS
server reach each other over a network. Leaving the block (or the process exiting
early) deletes both namespaces, and with them the veth pairs; the programs run
inside must have been stopped first, by their PIDs. Needs root and iproute2's `ip`
(MissingTool otherwise, from find_tool).
"""

from __future__ import annotations

import atexit
import ctypes
import ipaddress
import os
import random
import re
import socket
import subprocess
from pathlib import Path

from support.freeradius import find_tool

CLONE_NEWNET = 0x40000000
NAME_PREFIX = "vpop-test-"
UPLINK_RANGE = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544: for tests, never routed

_libc = ctypes.CDLL(None, use_errno=True)
_made: set[str] = set()  # namespaces made here and not yet deleted


def _ip(*args: str) -> None:
    result = subprocess.run([find_tool("ip"), *args], capture_output=True, text=True,
                            timeout=30)
    if result.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


class Namespace:
    """One named network namespace (`ip netns add`)."""

    def __init__(self, name: str):
        self.name = name

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside this namespace; `ip netns exec` execs it, so the PID a
        Popen of this reports is the program's own."""
        return [find_tool("ip"), "netns", "exec", self.name, *argv]

    def socket(self, kind: int = socket.SOCK_DGRAM,
               family: int = socket.AF_INET) -> socket.socket:
        """A socket in this namespace. setns(2) moves only the calling thread, which
        moves back before this returns; the socket stays where it was made."""
        with open("/proc/thread-self/ns/net", "rb") as home, \
                open(f"/run/netns/{self.name}", "rb") as there:
            _setns(there.fileno())
            try:
                return socket.socket(family, kind)
            finally:
                _setns(home.fileno())

    def __repr__(self) -> str:
        return f"<Namespace {self.name}>"


class WiredLink:
    """A NAS namespace and a supplicant namespace, joined by a veth pair; with
    `uplink`, the NAS's namespace joined to this host's by a routed veth pair too."""

    def __init__(self, *, uplink: bool = False):
        token = f"{os.getpid()}-{random.randrange(1 << 16):04x}"
        self.nas = Namespace(f"{NAME_PREFIX}nas-{token}")
        self.supplicant = Namespace(f"{NAME_PREFIX}sup-{token}")
        short = token.split("-")[1]
        self.nas_interface = f"vpnas{short}"  # interface names: 15 characters at most
        self.supplicant_interface = f"vpsup{short}"
        self.uplink = uplink
        self.host_uplink = f"vpup{short}"  # this host's end
        self.nas_uplink = f"vpupn{short}"  # the NAS's end
        # One /30 of the range, chosen by the same token as the names: .1 this host's
        # end, .2 the NAS's.
        blocks = UPLINK_RANGE.num_addresses // 4
        base = UPLINK_RANGE.network_address + (int(short, 16) % blocks) * 4
        self.host_address, self.nas_address = str(base + 1), str(base + 2)

    def create(self) -> "WiredLink":
        _delete_leftovers()
        for namespace in (self.nas, self.supplicant):
            _ip("netns", "add", namespace.name)
            _made.add(namespace.name)
        try:
            _ip("link", "add", self.nas_interface, "netns", self.nas.name, "type", "veth",
                "peer", "name", self.supplicant_interface, "netns", self.supplicant.name)
            for namespace, interface in ((self.nas, self.nas_interface),
                                         (self.supplicant, self.supplicant_interface)):
                _ip("-n", namespace.name, "link", "set", "lo", "up")
                _ip("-n", namespace.name, "link", "set", interface, "up")
            if self.uplink:
                self._create_uplink()
        except BaseException:
            self.delete()
            raise
        return self

    def _create_uplink(self) -> None:
        _ip("link", "add", self.host_uplink, "type", "veth", "peer", "name", self.nas_uplink,
            "netns", self.nas.name)
        _ip("address", "add", f"{self.host_address}/30", "dev", self.host_uplink)
        _ip("link", "set", self.host_uplink, "up")
        _ip("-n", self.nas.name, "address", "add", f"{self.nas_address}/30", "dev",
            self.nas_uplink)
        _ip("-n", self.nas.name, "link", "set", self.nas_uplink, "up")

    def delete(self) -> None:
        """Delete both namespaces; the veth pairs go with them (this host's end of the
        uplink too, deleted here first should the namespace's deletion fail)."""
        if self.uplink and Path(f"/sys/class/net/{self.host_uplink}").exists():
            _ip("link", "delete", self.host_uplink)
        for namespace in (self.nas, self.supplicant):
            _delete(namespace.name)

    def __enter__(self) -> "WiredLink":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.delete()


def _delete(name: str) -> None:
    if Path(f"/run/netns/{name}").exists():
        _ip("netns", "delete", name)
    _made.discard(name)


def _delete_leftovers() -> None:
    """Namespaces of an earlier run that was killed before it could delete them."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return
    for name in names:
        match = re.fullmatch(re.escape(NAME_PREFIX) + r"(?:nas|sup)-(\d+)-[0-9a-f]{4}", name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            _delete(name)


@atexit.register
def _delete_made() -> None:
    for name in list(_made):
        try:
            _delete(name)
        except (OSError, RuntimeError):
            pass
