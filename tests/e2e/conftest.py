"""End-to-end fixtures: `vpop serve` as a subprocess on free loopback ports.

Each server lives in its own temporary directory, made by `vpop init --demo`
and edited to listen on 127.0.0.1 and ::1 on ports the kernel handed out, with
the Prometheus endpoint on a free port and the log in a file. A server is
ready once it answers a Status-Server; at teardown it gets SIGTERM and must
exit with status 0. Requests are built with vpop's codec (the `nas` fixture)
or sent by FreeRADIUS's radclient and radtest (the `freeradius` fixture).
A missing radclient fails the tests that need it, with the reason: an
integration test that silently skipped would hide a broken test machine.
"""

from __future__ import annotations

import pytest

from e2e_support import FreeRadius, Nas, VpopServer


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    """Start servers for this module; at its end each gets SIGTERM and must exit 0."""
    started: list[VpopServer] = []

    def start(*, workers: int = 1) -> VpopServer:
        server = VpopServer.create(tmp_path_factory.mktemp("vpop"), workers=workers)
        server.start()  # a server that fails to start is killed and fails the test here
        started.append(server)
        return server

    yield start
    problems = []
    for server in started:
        status = server.stop()  # the status a test saw, if it stopped the server itself
        if status != 0:
            problems.append(f"vpop serve exited with status {status} after SIGTERM\n"
                            f"{server.diagnostics()}")
        elif "Traceback" in server.log_text() + server.output_text():
            problems.append(f"vpop serve logged a traceback\n{server.diagnostics()}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def server(launch) -> VpopServer:
    """One single-process server shared by the tests of a module."""
    return launch()


@pytest.fixture(scope="session")
def nas() -> Nas:
    return Nas()


@pytest.fixture(scope="session")
def freeradius() -> FreeRadius:
    return FreeRadius()
