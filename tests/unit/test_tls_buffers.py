"""`shrink_tls_read_buffers`: new TLS connections read into the smaller buffer."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ssl

import pytest

from rollouts.controller.tls_buffers import READ_BUFFER, shrink_tls_read_buffers


def _buffer_of_a_new_connection() -> int:
    loop = asyncio.new_event_loop()
    try:
        protocol = asyncio.sslproto.SSLProtocol(
            loop, asyncio.Protocol(), ssl.create_default_context(), None)
        return len(protocol.get_buffer(-1))
    finally:
        loop.close()


def test_the_standard_library_still_has_the_buffer_size_we_lower() -> None:
    # If this fails, CPython changed its TLS transport: the controller's TLS read buffers are
    # back at their default size (rollouts.controller.tls_buffers).
    assert isinstance(asyncio.sslproto.SSLProtocol.max_size, int)
    assert _buffer_of_a_new_connection() == asyncio.sslproto.SSLProtocol.max_size


def test_new_connections_read_into_the_smaller_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncio.sslproto.SSLProtocol, "max_size",
                        asyncio.sslproto.SSLProtocol.max_size)  # restored after the test
    assert shrink_tls_read_buffers()
    assert _buffer_of_a_new_connection() == READ_BUFFER
    assert shrink_tls_read_buffers(10 * READ_BUFFER)  # never larger than it was
    assert _buffer_of_a_new_connection() == READ_BUFFER
