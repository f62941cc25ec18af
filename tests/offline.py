"""The suite runs offline: a socket guard that lets tests reach loopback and nothing else.

``tests/conftest.py`` installs it for the whole run, so a test (or the code under test) that
tries the internet fails at once with :class:`OfflineError` instead of hanging or passing only
on a connected machine. CI also runs the suite inside a network namespace (``.ci/run``), which
covers subprocesses (the Streamlit server, Chromium) at the OS level.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", ""})

_saved: dict[str, Any] = {}


class OfflineError(ConnectionRefusedError):
    """An outbound connection attempted while the suite runs offline."""


def is_local(address: object) -> bool:
    """Whether ``address`` (an INET socket address or a host name) stays on this machine."""
    host = address[0] if isinstance(address, tuple) and address else address
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False  # a host name other than localhost
    return ip.is_loopback or ip.is_unspecified


def _refuse(what: object) -> OfflineError:
    return OfflineError(f"tests run offline: {what!r} is not loopback (no internet in the suite)")


def install() -> None:
    """Patch ``socket`` so connections and name lookups beyond loopback raise OfflineError."""
    if _saved:
        return
    _saved.update(
        connect=socket.socket.connect,
        connect_ex=socket.socket.connect_ex,
        getaddrinfo=socket.getaddrinfo,
    )

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address):
            raise _refuse(address)
        return _saved["connect"](self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address):
            raise _refuse(address)
        return _saved["connect_ex"](self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not is_local(host):
            raise _refuse(host)
        return _saved["getaddrinfo"](host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def uninstall() -> None:
    """Undo :func:`install`."""
    if not _saved:
        return
    socket.socket.connect = _saved.pop("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = _saved.pop("connect_ex")  # type: ignore[method-assign]
    socket.getaddrinfo = _saved.pop("getaddrinfo")  # type: ignore[assignment]
