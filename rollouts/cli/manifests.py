"""Reading manifests safely: files, directories or standard input, one YAML stream each.

Whatever the bytes, the outcome is documents or a Problem naming the file (and document):
text that is not UTF-8, invalid YAML, nesting deeper than MAX_DEPTH, anchors and aliases
that would expand past MAX_EXPANDED nodes (an "alias bomb": a few hundred bytes that unfold
into gigabytes) or that refer to themselves, and numbers too long to convert are all
refused before any document is built. The checks run over PyYAML's event stream, which
needs no recursion and builds nothing, so they are cheap and cannot themselves blow up.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

import yaml

STDIN: Final = "-"
MAX_DEPTH: Final = 100  # nesting of mappings and sequences
MAX_EXPANDED: Final = 200_000  # nodes of one document once every alias is expanded
MAX_NUMBER_DIGITS: Final = 1_000  # far below Python's 4,300-digit int conversion limit
YAML_SUFFIXES: Final = (".yaml", ".yml")
_NUMBERISH: Final = re.compile(r"[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?\Z")


@dataclass(frozen=True)
class Problem:
    file: str
    doc: int  # 1-based; 0 for the file as a whole
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:doc {self.doc}" if self.doc else self.file
        prefix = "warning: " if self.warning else ""
        return f"{where}: {prefix}{self.path}: {self.message}"


@dataclass(frozen=True)
class Document:
    file: str
    index: int
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Source:
    """The text of one input, or why there is none."""

    name: str
    text: str | None
    problem: Problem | None = None


def yaml_files(paths: Iterable[Path]) -> list[Path]:
    """Files to read: a directory stands for its *.yaml / *.yml files, recursively, sorted."""
    found: list[Path] = []
    for path in paths:
        if str(path) != STDIN and path.is_dir():
            found.extend(sorted(p for p in path.rglob("*")
                                if p.suffix in YAML_SUFFIXES and p.is_file()))
        else:
            found.append(path)
    return found


def read_source(path: Path, stdin: BinaryIO | None = None) -> Source:
    """The UTF-8 text of a file, or of standard input for `-`."""
    name = "<stdin>" if str(path) == STDIN else str(path)
    try:
        data = (stdin or sys.stdin.buffer).read() if str(path) == STDIN else path.read_bytes()
    except FileNotFoundError:
        return Source(name, None, Problem(name, 0, "<file>", "no such file"))
    except OSError as exc:
        return Source(name, None, Problem(name, 0, "<file>",
                                          f"cannot read: {exc.strerror or exc}"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Source(name, None, Problem(
            name, 0, "<file>",
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"))
    return Source(name, text.removeprefix("\ufeff"))


def _line(event: yaml.Event) -> str:
    mark = event.start_mark
    return f" (line {mark.line + 1})" if mark is not None else ""


@dataclass
class _Frame:
    """An open mapping or sequence while the event stream is walked."""

    anchor: str | None
    mapping: bool
    size: int = 1  # nodes below it, aliases expanded
    children: int = 0
    keys: set[str] = field(default_factory=set)


class _StreamCheck:
    """Depth, expanded size, self-referencing aliases, duplicate keys and long numbers."""

    def __init__(self) -> None:
        self.frames: list[_Frame] = []
        self.sizes: dict[str, int] = {}  # anchor -> expanded size of its node
        self.total = 0

    def new_document(self) -> None:
        self.sizes.clear()
        self.total = 0

    def feed(self, event: yaml.Event) -> str | None:
        """Why the document must not be built, or None to go on."""
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            why = self.child(event, None)
            if len(self.frames) >= MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep{_line(event)}"
            self.frames.append(_Frame(event.anchor, isinstance(event, yaml.MappingStartEvent)))
            return why
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = self.frames.pop()
            if frame.anchor is not None:
                self.sizes[frame.anchor] = frame.size
            return self.add(frame.size, event)
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.sizes:
                if any(frame.anchor == event.anchor for frame in self.frames):
                    return f"alias *{event.anchor} refers to itself{_line(event)}"
                return f"undefined alias *{event.anchor}{_line(event)}"
            return self.child(event, None) or self.add(self.sizes[event.anchor], event)
        if isinstance(event, yaml.ScalarEvent):
            if event.style is None and len(event.value) > MAX_NUMBER_DIGITS \
                    and _NUMBERISH.match(event.value):
                return f"number with {len(event.value)} digits is too long{_line(event)}"
            if event.anchor is not None:
                self.sizes[event.anchor] = 1
            return self.child(event, event.value) or self.add(1, event)
        return None

    def child(self, event: yaml.Event, scalar: str | None) -> str | None:
        """Count a child of the open collection; in a mapping, every other one is a key."""
        if not self.frames:
            return None
        frame = self.frames[-1]
        is_key = frame.mapping and frame.children % 2 == 0
        frame.children += 1
        if is_key and scalar is not None and scalar != "<<":
            if scalar in frame.keys:
                return f"duplicate key {scalar[:60]!r}{_line(event)}"
            frame.keys.add(scalar)
        return None

    def add(self, size: int, event: yaml.Event) -> str | None:
        if self.frames:
            self.frames[-1].size += size
            grown = self.frames[-1].size
        else:
            self.total += size
            grown = self.total
        if grown > MAX_EXPANDED:
            return (f"aliases expand to more than {MAX_EXPANDED} nodes (a YAML alias bomb?)"
                    f"{_line(event)}")
        return None


def check_stream(text: str) -> tuple[int, str] | None:
    """(document number, why) for the first document that must not be built, else None.

    Walks the event stream once (no recursion, nothing built): nesting depth, the expanded
    size of every anchored node, aliases to a node still open (a self-reference), duplicate
    keys (kubectl refuses them; PyYAML would keep the last silently) and over-long numbers.
    """
    doc = 0
    check = _StreamCheck()
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                doc += 1
                check.new_document()
                continue
            why = check.feed(event)
            if why is not None:
                return doc, why
    except yaml.YAMLError:
        return None  # the loader reports syntax errors with their position
    return None


def load_documents(source: Source) -> tuple[list[Document], list[Problem], list[int]]:
    """Mapping documents (numbered from 1), problems, and the numbers of empty documents."""
    name = source.name
    if source.text is None:
        assert source.problem is not None
        return [], [source.problem], []
    refused = check_stream(source.text)
    if refused is not None:
        doc, why = refused
        return [], [Problem(name, doc, "<yaml>", f"refused: {why}")], []
    docs: list[Document] = []
    empty: list[int] = []
    index = 0
    try:
        for index, body in enumerate(yaml.safe_load_all(source.text), start=1):
            if body is None:
                empty.append(index)
                continue
            if not isinstance(body, Mapping):
                return docs, [Problem(name, index, "<root>",
                                      f"a manifest must be a mapping, not a "
                                      f"{_yaml_type(body)}")], empty
            docs.append(Document(name, index, body))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return docs, [Problem(name, index + 1, "<yaml>", f"invalid YAML{where}: {problem}")], \
            empty
    except (ValueError, RecursionError) as exc:
        # e.g. a timestamp out of range; never a traceback
        return docs, [Problem(name, index + 1, "<yaml>", f"invalid value: {exc}")], empty
    return docs, [], empty


def _yaml_type(value: object) -> str:
    if isinstance(value, list):
        return "sequence"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def read_documents(path: Path, stdin: BinaryIO | None = None) -> tuple[list[Document],
                                                                       list[Problem]]:
    """Every mapping document of a (multi-document) YAML file, numbered from 1."""
    docs, problems, _ = load_documents(read_source(path, stdin))
    return docs, problems
