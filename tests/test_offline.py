"""The suite runs offline: the in-process socket guard, and the OS-level block CI runs under."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from tests.offline import OfflineError, is_local

OUTSIDE = ("192.0.2.1", 80)  # TEST-NET-1: never a real host


def test_guard_refuses_outbound_connections_and_lookups() -> None:
    with pytest.raises(OfflineError, match="not loopback"):
        socket.create_connection(OUTSIDE, timeout=1)
    with pytest.raises(OfflineError):
        socket.getaddrinfo("download.pytorch.org", 443)
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s, pytest.raises(OfflineError):
        s.connect_ex(("2001:db8::1", 443, 0, 0))


def test_guard_lets_loopback_through() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        accepted = threading.Thread(target=lambda: server.accept()[0].close())
        accepted.start()
        with socket.create_connection(("localhost", server.getsockname()[1]), timeout=5):
            pass
        accepted.join(5)
    assert not accepted.is_alive()


@pytest.mark.parametrize(
    ("address", "local"),
    [(("127.0.0.1", 1), True), (("::1", 1, 0, 0), True), (("localhost", 1), True),
     (("0.0.0.0", 1), True), ("localhost", True), (("10.0.0.1", 1), False),
     (("pypi.org", 443), False), (("8.8.8.8", 53), False), ("example.com", False)],
)  # fmt: skip
def test_is_local(address, local) -> None:
    assert is_local(address) is local


@pytest.mark.skipif(
    os.environ.get("ABN_TESTS_OFFLINE") != "1",
    reason="checks the OS-level block: run the suite through .ci/run (network namespace)",
)
def test_ci_runs_without_a_route_to_the_internet() -> None:
    """A fresh interpreter (no guard) cannot reach outside: the block is the kernel's."""
    probe = (
        "import socket\n"
        "s = socket.socket(); s.settimeout(3)\n"
        "print(s.connect_ex(('1.1.1.1', 443)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) != 0  # ENETUNREACH inside the namespace
