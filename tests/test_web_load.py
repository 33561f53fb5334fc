"""Issue 25, findings 3 and 5: connections opened and held (slowloris), and one small upload that decodes to
gigabytes. Every load here is bounded in count and time, and goes to loopback or the server's own socket only."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import IndexedLibrary, run_cli
from web_server import WebServer, multipart

from clipsearch.config import DataDir
from clipsearch.errors import ImageTooLargeError, TruncatedImageError
from clipsearch.imaging import isolated
from clipsearch.imaging.decode import check_image
from clipsearch.library.remote import server_info, socket_path
from clipsearch.web.server import HEAD_TIMEOUT_S, RepeatFilter

pytestmark = pytest.mark.slow

HELD = 300  # of each kind: idle, and half-sent
SERVER_STDERR_LIMIT = 10_000
RSS_LIMIT_KB = 1_200_000


# --- 3. slowloris -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def held_connections(connect, head: bytes, count: int) -> Iterator[list[socket.socket]]:
    """`count` idle connections and `count` that sent part of a request head, all closed on the way out."""
    held: list[socket.socket] = []
    try:
        for number in range(2 * count):
            connection = connect()
            connection.settimeout(HEAD_TIMEOUT_S + 20)
            held.append(connection)
            if number % 2:
                with contextlib.suppress(OSError):  # closed already, beyond the cap: what the server may do
                    connection.sendall(head)
        yield held
    finally:
        for connection in held:
            connection.close()


def closed_by_server(connection: socket.socket, deadline: float) -> bool:
    """Whether the server closes the connection by the deadline (time.monotonic()): all of them share one."""
    connection.settimeout(max(deadline - time.monotonic(), 0.01))
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def all_closed_by_server(held: list[socket.socket]) -> int:
    """How many of the held connections are still open HEAD_TIMEOUT_S (and some) from now."""
    deadline = time.monotonic() + HEAD_TIMEOUT_S + 15
    return sum(not closed_by_server(connection, deadline) for connection in held)


def server_stderr(web: WebServer) -> int:
    return sum(len(line) for line in web.stderr_lines)


def test_held_connections_do_not_keep_the_page_from_answering_and_are_closed(web: WebServer) -> None:
    def connect() -> socket.socket:
        return socket.create_connection((web.address, web.port), timeout=10)

    head = f"GET / HTTP/1.1\r\nHost: {web.address}:{web.port}\r\nX-Slow: ".encode()
    with held_connections(connect, head, HELD) as held:
        status, _, body = web.get("/", timeout=10)  # not held up by the 600 before it
        assert status == 200 and b"csrf" in body
        still_open = all_closed_by_server(held)
        assert not still_open, f"{still_open} of the {len(held)} held connections left open"
    assert web.get("/", timeout=10)[0] == 200
    assert server_stderr(web) < SERVER_STDERR_LIMIT, "".join(web.stderr_lines)[-2000:]


def test_a_request_head_sent_a_byte_at_a_time_does_not_hold_a_connection_forever(web: WebServer) -> None:
    head = f"GET / HTTP/1.1\r\nHost: {web.address}:{web.port}\r\nX-Slow: {'a' * 100}".encode()
    with socket.create_connection((web.address, web.port), timeout=10) as connection:
        started = time.monotonic()
        for byte in head:  # each byte restarts nothing: the head has HEAD_TIMEOUT_S in all
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            if time.monotonic() - started > HEAD_TIMEOUT_S + 10:
                break
        assert closed_by_server(connection, started + HEAD_TIMEOUT_S + 10)


def test_held_connections_on_the_socket_do_not_turn_commands_away(web: WebServer, web_db: Path) -> None:
    path = str(socket_path(DataDir(web_db)))

    def connect() -> socket.socket:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(10)
        connection.connect(path)
        return connection

    before = server_info(DataDir(web_db))
    assert before is not None
    with held_connections(connect, b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Le", 100) as held:
        result = run_cli("query", "a red circle", "--db", web_db)
        assert result.exit_code == 0, result.stderr
        after = server_info(DataDir(web_db))
        assert after is not None and after["answered"] == before["answered"] + 1  # the server's answer
        assert all_closed_by_server(held) == 0


def test_a_flood_of_one_log_message_is_shown_once_with_a_count() -> None:
    logger = logging.getLogger("clipsearch-test-repeats")
    shown: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: shown.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.addFilter(RepeatFilter(interval_s=0.3))
    logger.propagate = False
    try:
        for number in range(20_000):
            logger.error("socket.accept() out of system resource\nsocket: <fd=%d>", number)
        logger.error("another message")
        time.sleep(0.35)
        logger.error("socket.accept() out of system resource\nsocket: <fd=1>")
    finally:
        logger.removeHandler(handler)
    assert len(shown) == 3, shown
    assert "19999 more like this" in shown[2]


# --- 5. one small upload that decodes to gigabytes -----------------------------------------------------------------
def flat_png(width: int, height: int, bit_depth: int = 16, colour_type: int = 6) -> bytes:
    """A PNG of one flat colour, written a row at a time: a 16-bit RGBA 14000x14000 one is 1.5 MB here, and
    1.5 GB once decoded (Pillow would need that much to write it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bands = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = bytes(1 + width * bands * bit_depth // 8)
    compressor = zlib.compressobj(6)
    compressed = b"".join([compressor.compress(row) for _ in range(height)] + [compressor.flush()])
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", compressed) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = flat_png(14000, 14000)
    assert len(data) < 2 << 20
    return data


def peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def test_the_decode_budget_counts_bit_depth_and_bands(bomb: bytes) -> None:
    with pytest.raises(ImageTooLargeError) as caught:
        check_image(bomb)  # 196 MP: under the 200 MP limit, but 8 bytes a pixel
    assert str(caught.value) == ("14000x14000 with 4 bands of 16 bits needs 1.5 GB to decode, over the 1 GB limit")
    assert check_image(flat_png(12000, 12000, 8, 2)) == (12000, 12000)  # 144 MP of 8-bit RGB: 0.4 GB


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the server's peak memory from /proc")
def test_an_upload_that_decodes_to_gigabytes_is_refused_and_costs_the_server_little(
        web: WebServer, web_db: Path, bomb: bytes) -> None:
    info = server_info(DataDir(web_db))
    assert info is not None
    body, content_type = multipart({"csrf": web.csrf()}, "big.png", bomb, "image/png")
    status, _, page = web.request("POST", "/like", headers={"Content-Type": content_type}, body=body, timeout=60)
    assert status == 400
    assert b"big.png: 14000x14000 with 4 bands of 16 bits needs 1.5 GB to decode" in page
    assert web.get("/", timeout=10)[0] == 200  # still answering
    assert peak_rss_kb(info["pid"]) < RSS_LIMIT_KB


def test_similar_of_a_file_that_decodes_to_gigabytes_is_one_line(indexed_library: IndexedLibrary, bomb: bytes,
                                                                  tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(bomb)
    result = run_cli("similar", big, "--db", indexed_library.db)
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "big.png: 14000x14000 with 4 bands of 16 bits needs 1.5 GB to decode, over the 1 GB limit" in result.stderr


def _allocate_beyond_the_limit() -> bytes:
    isolated.limit_address_space(256 << 20)
    return bytes(2 << 30)  # what a decoder bomb asks for: a MemoryError here, in the child


def _die() -> None:
    os.kill(os.getpid(), 9)


def test_a_decode_that_runs_out_of_memory_or_dies_fails_only_its_child() -> None:
    with pytest.raises(ImageTooLargeError, match="not enough memory to decode it"):
        isolated._in_child(_allocate_beyond_the_limit)
    with pytest.raises(TruncatedImageError, match=r"killed the decoder \(killed, likely out of memory\)"):
        isolated._in_child(_die)
    pixels = isolated.model_pixels(flat_png(300, 200, 8, 2), 224, "shortest", "bicubic")
    assert pixels.shape == (224, 224, 3)
