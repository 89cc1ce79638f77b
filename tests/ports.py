"""A free TCP port on 127.0.0.1, for the servers and clusters the tests start (and for addresses nobody serves)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on once this returns (the probe socket is closed): bind a server to it, or use it
    as an address that refuses connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
