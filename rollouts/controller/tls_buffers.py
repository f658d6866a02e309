"""A smaller read buffer for asyncio's TLS connections.

asyncio's TLS transport (`asyncio.sslproto.SSLProtocol`, Python 3.11+) gives every connection a
read buffer of `max_size` bytes, 256 KiB, allocated and zero-filled when the connection is
made, so it is resident for the connection's life. The controller holds about twenty TLS
connections (kopf's watches and requests, the operator's own client and watches): ~3 MiB of
its peak at 1,000 Rollouts (tracemalloc, docs/benchmarks.md "Memory at 1,000 Rollouts, round
4"). A TLS record carries at most 16 KiB, and an API server's answers come in records: a
buffer of a few records costs more reads only for large lists, a few per megabyte.

The size is a class attribute of the standard library's protocol, read when a connection is
made and on each read; `shrink_tls_read_buffers` lowers it for the process. Where the
attribute is not there (another Python) it does nothing and says so
(tests/unit/test_tls_buffers.py fails loudly if CPython renames it).
"""

from __future__ import annotations

import asyncio.sslproto

__all__ = ["READ_BUFFER", "shrink_tls_read_buffers"]

READ_BUFFER = 64 * 1024  # bytes: four full TLS records


def shrink_tls_read_buffers(size: int = READ_BUFFER) -> bool:
    """Make new TLS connections of this process read into `size`-byte buffers (never larger
    than the default); whether the standard library let us. Process-wide: call it only where
    the controller is the program."""
    protocol = getattr(asyncio.sslproto, "SSLProtocol", None)
    current = getattr(protocol, "max_size", None)
    if protocol is None or not isinstance(current, int):
        return False
    protocol.max_size = min(current, size)
    return True
