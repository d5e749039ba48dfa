"""llama-server on a free loopback port, for the scripts and tests that talk to it: started, waited for until
/health answers, stopped by its PID (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from .errors import CommandError

LOAD_SECONDS = 300
STOP_SECONDS = 60
ERROR_LINE = re.compile(r"^\S+ E |error", re.IGNORECASE)
"""A line of the server's log that says why it stopped: an error level line, or an argument error."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """llama-server on a free loopback port with `args`, its output in `log`."""

    def __init__(self, binary: Path, model: Path, args: list[str], log: Path, load_seconds: float = LOAD_SECONDS) -> None:
        self.port = free_port()
        self.command = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port), *args]
        self.log = log
        self.load_seconds = load_seconds
        self.url = f"http://127.0.0.1:{self.port}"
        self.exit = ""
        """How it ended: "exit 0" after SIGTERM, else what makes it a crash."""

    def __enter__(self) -> Server:
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.load_seconds
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                lines = self.log.read_text(errors="replace").splitlines()
                shown = "\n".join([line for line in lines if ERROR_LINE.search(line)][:3] or lines[-5:])
                raise CommandError(f"llama-server did not start ({self.exit}): {shlex.join(self.command)}\n{shown}",
                                   f"see {self.log}")
            time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                return r.status == 200
        except OSError:  # also URLError: not listening yet
            return False

    def crashed(self) -> bool:
        return self.exit != "exit 0"

    def stop(self) -> None:
        if self.exit:
            return
        if self.proc.poll() is not None:
            self.exit = f"exited by itself with {self.proc.returncode}"
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_SECONDS)
            self.exit = f"exit {code}" if code >= 0 else f"killed by signal {-code} after SIGTERM"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.exit = f"still running {STOP_SECONDS} s after SIGTERM, killed"
