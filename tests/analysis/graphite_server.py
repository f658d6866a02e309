"""A real graphite-web (Debian's package) on 127.0.0.1 with its own storage directory.

Debian's graphite-web runs on the system Python (/usr/bin/python3, where Django and whisper
are installed), so the server and the whisper writer run there, in subprocesses.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

SYSTEM_PYTHON = "/usr/bin/python3"
SETTINGS = '''
import os
STORAGE_DIR = os.environ["GRAPHITE_STORAGE_DIR"]
LOG_DIR = os.path.join(STORAGE_DIR, "log")
SECRET_KEY = "rollouts-test"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.path.join(STORAGE_DIR, "graphite.db")}}
TAGDB = ""
'''


def available() -> str | None:
    """None if graphite-web and whisper are installed, else why not."""
    if not os.path.exists("/usr/bin/graphite-manage"):
        return "graphite-web is not installed: run scripts/setup.sh"
    check = subprocess.run([SYSTEM_PYTHON, "-c", "import whisper, django"], capture_output=True)
    if check.returncode != 0:
        return "python3-whisper is not installed: run scripts/setup.sh"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_series(root: pathlib.Path, name: str, points: list[tuple[int, float]]) -> None:
    """Store `points` (unix seconds, value) as whisper metric `name` (dots are directories),
    one point a minute kept for a day."""
    path = root / "storage" / "whisper" / (name.replace(".", "/") + ".wsp")
    path.parent.mkdir(parents=True, exist_ok=True)
    script = (
        "import sys, json, whisper\n"
        "whisper.create(sys.argv[1], [(60, 1440)])\n"
        "whisper.update_many(sys.argv[1], [tuple(p) for p in json.loads(sys.argv[2])])\n"
    )
    import json

    subprocess.run([SYSTEM_PYTHON, "-c", script, str(path), json.dumps(points)], check=True)


@contextmanager
def graphite(root: pathlib.Path) -> Iterator[str]:
    """Start graphite-web for `root`; yields its base URL."""
    (root / "storage" / "log").mkdir(parents=True, exist_ok=True)
    (root / "graphite_test_settings.py").write_text(SETTINGS)
    env = {
        **os.environ,
        "GRAPHITE_SETTINGS_MODULE": "graphite_test_settings",
        "GRAPHITE_STORAGE_DIR": str(root / "storage"),
        "PYTHONPATH": str(root),
        "DJANGO_SETTINGS_MODULE": "graphite.settings",
    }
    subprocess.run([SYSTEM_PYTHON, "-m", "django", "migrate", "--run-syncdb", "-v0"],
                   env=env, check=True, capture_output=True, timeout=120)
    port = _free_port()
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [SYSTEM_PYTHON, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"graphite-web exited: {(root / 'server.log').read_text()}")
            try:
                urllib.request.urlopen(url + "/render?target=none&format=json", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
