"""A GitOps tool in miniature: a real local Git repository (the git CLI) and an applier that
re-applies the manifests of its HEAD by server-side apply taking ownership of conflicts,
as Flux's kustomize-controller does, on a fixed interval, into the sandbox's API emulator.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import threading
from typing import Any

import yaml

from rollouts.sandbox.apiserver import ApiEmulator

FIELD_MANAGER = "kustomize-controller"  # Flux's field manager


class GitRepo:
    """A throw-away repository in `path`; commits with a fixed identity."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
               "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
               "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.path)}
        done = subprocess.run(["git", "-C", str(self.path), *args], env=env, check=True,
                              capture_output=True, text=True)
        return done.stdout

    def commit(self, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            (self.path / name).write_text(text)
            self.git("add", name)
        self.git("commit", "-q", "-m", message)
        return self.head()

    def revert_head(self) -> str:
        self.git("revert", "--no-edit", "HEAD")
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def manifests(self, commit: str) -> list[dict[str, Any]]:
        """Every YAML document of `commit`, read from Git (not from the work tree)."""
        docs: list[dict[str, Any]] = []
        for name in sorted(self.git("ls-tree", "--name-only", commit).split()):
            if name.endswith((".yaml", ".yml")):
                text = self.git("show", f"{commit}:{name}")
                docs += [d for d in yaml.safe_load_all(text) if d]
        return docs


class Applier:
    """Re-applies HEAD every `interval` seconds in a thread (server-side apply, force)."""

    def __init__(self, repo: GitRepo, emulator: ApiEmulator, namespace: str, *,
                 interval: float = 1.0) -> None:
        self.repo, self.emulator, self.namespace = repo, emulator, namespace
        self.interval = interval
        self.applied: list[str] = []  # the commit of each pass, in order
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gitops-applier", daemon=True)

    def apply_head(self) -> str:
        commit = self.repo.head()
        for doc in self.repo.manifests(commit):
            doc.setdefault("metadata", {})["namespace"] = self.namespace
            self.emulator.apply_server_side(doc, FIELD_MANAGER, force=True)
        self.applied.append(commit)
        return commit

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.apply_head()
            except BaseException as exc:  # reported by stop()
                self.errors.append(exc)
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> Applier:
        self.apply_head()  # the first sync, before the thread takes over
        self._stop.wait(self.interval)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.errors:
            raise self.errors[0]
