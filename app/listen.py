"""Listening sockets, bound before anything starts: a busy port is one line, not a traceback."""

from __future__ import annotations

import errno
import socket


class PortUnavailable(Exception):
    """The port cannot be listened on; the message says which, why, and what to change."""


def bind(port: int, setting: str) -> socket.socket:
    """A listening socket on every interface (IPv6 and IPv4 where the host has both)."""
    try:
        if socket.has_dualstack_ipv6():
            try:
                return socket.create_server(
                    ("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=128
                )
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise
                # No IPv6 here after all (a container without it): IPv4 alone.
        return socket.create_server(("0.0.0.0", port), backlog=128)  # noqa: S104 - a server
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortUnavailable(
                f"port {port} is already in use: stop what listens there, or set {setting} "
                "to another port"
            ) from None
        raise PortUnavailable(f"cannot listen on port {port} ({setting}): {exc.strerror}") from None
