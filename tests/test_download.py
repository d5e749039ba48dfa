"""Downloads that go wrong half way, against a real HTTP server on loopback: a body cut short and Ctrl-C."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from builder.__main__ import main
from conftest import write_pin
from test_fetch import url_source

ANNOUNCED = 500_000
SENT = 200_000  # more than one read block, so the download is under way when the body stops


class _HalfBody(http.server.BaseHTTPRequestHandler):
    """Announces ANNOUNCED bytes and sends SENT; then closes the connection, or waits while `hold` is clear."""

    hold: threading.Event | None = None

    def do_GET(self):  # noqa: N802 - the base class's name
        self.send_response(200)
        self.send_header("Content-Length", str(ANNOUNCED))
        self.end_headers()
        self.wfile.write(b"\0" * SENT)
        self.wfile.flush()
        if self.hold is not None:
            self.hold.wait(60)
        self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def half_body_server():
    """Yields (base URL, hold): set `hold` to make requests wait after SENT bytes until it is cleared."""
    hold = threading.Event()
    handler = type("Handler", (_HalfBody,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler, hold
    finally:
        hold.set()
        server.shutdown()
        server.server_close()


def test_a_body_cut_short_is_refused_and_nothing_is_kept(small_tree, half_body_server, tmp_path, capsys):
    base, _, _ = half_body_server
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz"))
    cache = tmp_path / "cache"
    assert main(["fetch", "--pin", str(pin), "--cache-dir", str(cache)]) == 3
    err = capsys.readouterr().err
    assert f"download of {base}/b1.tar.gz was cut short after" in err and f"of {ANNOUNCED} bytes" in err
    assert list((cache / "downloads").iterdir()) == []
    assert not (cache / "src").exists()


def test_ctrl_c_during_a_download_leaves_nothing_behind(small_tree, half_body_server, tmp_path):
    base, handler, hold = half_body_server
    handler.hold = hold  # the server sends SENT bytes, then keeps the download open
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz"))
    cache = tmp_path / "cache"
    partial = cache / "downloads" / "b1.tar.gz.partial"
    # a shell that runs the suite in the background without job control ignores SIGINT, and a child inherits
    # that (Python then installs no KeyboardInterrupt handler): give the fetch the terminal's default, as a user's has
    proc = subprocess.Popen([sys.executable, "-m", "builder", "fetch", "--pin", str(pin), "--cache-dir", str(cache)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size >= 1 << 16):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "error: interrupted" in err
    assert list((cache / "downloads").iterdir()) == []
    assert not (cache / "src").exists() and not list(cache.glob(".fetch-*"))
