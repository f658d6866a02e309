"""The controller's log lines: one JSON object a line, or human text for local use.

`rollouts controller` logs JSON by default (`--log-format text`, or the environment variable
ROLLOUTS_LOG_FORMAT=text, for people reading a terminal). Every line names:

* `time` (RFC 3339, UTC, milliseconds), `level` (debug, info, warning, error, critical),
  `logger` and `message`;
* `rollout` (`namespace/name`) when the line is about a Rollout, or `object`
  (`Kind namespace/name`) for another object kopf reports about;
* the record's own fields (`phase`, `step`, `error`, `retry_in`, ...), and `traceback`
  when there is one.

The same record in text: `2026-12-04T22:00:01.250Z INFO  default/web: reconciled
phase=Paused step=2/4 ...`.

Quiet by default: a controller with nothing to do logs nothing. kopf's per-object handler
outcomes ("Handler ... succeeded", one per watch event) and the HTTP client's per-request
lines are logged only with --verbose.

Secrets: whatever the caller names as secret (the API server credentials) is masked, in
every encoding `rollouts.analysis.masking` knows, in the finished line: a last line of
defence, each log call site already masks what it quotes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Final, TextIO

from rollouts.analysis.masking import mask

__all__ = ["CHATTY_LOGGERS", "FORMATS", "LOG_FORMAT_ENV", "configure", "record_fields"]

LOG_FORMAT_ENV: Final = "ROLLOUTS_LOG_FORMAT"
FORMATS: Final = ("json", "text")

# Loggers that speak once per object and event, or per HTTP request: silent unless --verbose.
CHATTY_LOGGERS: Final = ("kopf.objects", "httpx", "httpcore", "asyncio", "aiohttp.access")

# Attributes every LogRecord has, and the ones kopf's object loggers add: not fields.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.makeLogRecord({}))) | {
    "message", "asctime", "taskName", "k8s_ref", "k8s_skip", "settings",
}


def _about(record: logging.LogRecord) -> dict[str, str]:
    """The object a kopf record is about, as `rollout` or `object`."""
    ref = getattr(record, "k8s_ref", None)
    if not isinstance(ref, Mapping):
        return {}
    name = str(ref.get("name") or "")
    namespace = ref.get("namespace")
    where = f"{namespace}/{name}" if namespace else name
    kind = str(ref.get("kind") or "")
    return {"rollout": where} if kind == "Rollout" else {"object": f"{kind} {where}".strip()}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of one log line, in a stable order (pure)."""
    stamp = dt.datetime.fromtimestamp(record.created, dt.UTC)
    fields: dict[str, Any] = {
        "time": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
    }
    fields.update(_about(record))
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
            fields[key] = value
    if record.exc_info:
        fields["traceback"] = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        fields["traceback"] = record.exc_text
    return fields


class _Formatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        line = self.render(record_fields(record))
        return mask(line, self.secrets) if self.secrets else line

    def render(self, fields: dict[str, Any]) -> str:
        raise NotImplementedError


class JsonFormatter(_Formatter):
    """One JSON object a line."""

    def render(self, fields: dict[str, Any]) -> str:
        return json.dumps(fields, default=str, ensure_ascii=False)


class TextFormatter(_Formatter):
    """`time LEVEL where: message key=value ...` for a terminal."""

    def render(self, fields: dict[str, Any]) -> str:
        rest = dict(fields)
        head = f"{rest.pop('time')} {str(rest.pop('level')).upper():<7} "
        rest.pop("logger")
        where = rest.pop("rollout", None) or rest.pop("object", None)
        message = rest.pop("message")
        traceback = rest.pop("traceback", None)
        text = head + (f"{where}: " if where else "") + str(message)
        if rest:
            text += " " + " ".join(f"{key}={_text(value)}" for key, value in rest.items())
        return text + (f"\n{traceback}" if traceback else "")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        return json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False) if not value or any(
        c.isspace() or c == '"' for c in value) else value


class _Handler(logging.StreamHandler[TextIO]):
    """Ours, so that configuring again replaces it instead of doubling every line."""


def configure(log_format: str = "json", *, verbose: bool = False, secrets: Iterable[str] = (),
              stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to `stream` (stderr) in `log_format` ("json" or "text"):
    debug and up with `verbose`, else info and up with the chatty loggers held to warnings.
    """
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: use one of {', '.join(FORMATS)}")
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if log_format == "json"
                         else TextFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Handler)]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    return handler
