"""Two network namespaces joined by a veth pair: a wired LAN for a real NAS and its
supplicant, each in a namespace of its own, that a test makes and deletes.

    with WiredLink() as link:
        link.nas.command(["hostapd", ...])      # argv that runs inside the NAS's namespace
        sock = link.nas.socket(socket.SOCK_DGRAM)  # a socket inside it, made from here
        link.nas_interface, link.supplicant_interface

Nothing here leaves this machine: each namespace has its loopback and its end of the
veth, and no route anywhere else. Leaving the block (or the process exiting early)
deletes both namespaces, and with them the veth pair; the programs run inside must
have been stopped first, by their PIDs. Needs root and iproute2's `ip`
(MissingTool otherwise, from find_tool).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import random
import re
import socket
import subprocess
from pathlib import Path

from support.freeradius import find_tool

CLONE_NEWNET = 0x40000000
NAME_PREFIX = "vpop-test-"

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
    """A NAS namespace and a supplicant namespace, joined by a veth pair."""

    def __init__(self):
        token = f"{os.getpid()}-{random.randrange(1 << 16):04x}"
        self.nas = Namespace(f"{NAME_PREFIX}nas-{token}")
        self.supplicant = Namespace(f"{NAME_PREFIX}sup-{token}")
        short = token.split("-")[1]
        self.nas_interface = f"vpnas{short}"  # interface names: 15 characters at most
        self.supplicant_interface = f"vpsup{short}"

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
        except BaseException:
            self.delete()
            raise
        return self

    def delete(self) -> None:
        """Delete both namespaces; the veth pair goes with them."""
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
