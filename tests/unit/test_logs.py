"""The controller's log lines (rollouts.logs): JSON naming the rollout, text for people,
chatty loggers held back, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from rollouts import logs
from rollouts.analysis.masking import encodings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level,
             {name: logging.getLogger(name).level for name in logs.CHATTY_LOGGERS})
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_line_is_json_naming_the_rollout(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("json", stream=out)
    logging.getLogger("rollouts.operator").info(
        "reconciled", extra={"rollout": "shop/web", "phase": "Paused", "step": "2/4"})
    [line] = lines(out)
    record = json.loads(line)
    assert record["rollout"] == "shop/web"
    assert (record["level"], record["message"]) == ("info", "reconciled")
    assert (record["phase"], record["step"]) == ("Paused", "2/4")
    assert record["logger"] == "rollouts.operator"
    assert record["time"].endswith("Z")


def test_a_kopf_object_record_names_the_rollout_or_the_object(restore_logging: None) -> None:
    out = io.StringIO()
    handler = logs.configure("json", stream=out)
    for kind in ("Rollout", "Service"):
        # As kopf's object loggers make them (built here: kopf's own posting handler, left
        # on its logger by an operator run, would read `settings`).
        handler.handle(logging.makeLogRecord({
            "name": "kopf.objects", "levelno": logging.WARNING, "levelname": "WARNING",
            "msg": "Handler failed.",
            "k8s_ref": {"apiVersion": "v1", "kind": kind, "name": "web", "namespace": "shop",
                        "uid": "u"},
            "k8s_skip": True, "settings": object()}))
    rollout, service = (json.loads(line) for line in lines(out))
    assert rollout["rollout"] == "shop/web" and "object" not in rollout
    assert service["object"] == "Service shop/web" and "rollout" not in service
    assert "settings" not in rollout and "k8s_ref" not in rollout


def test_per_object_handler_outcomes_only_when_verbose(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("json", stream=out)
    logging.getLogger("kopf.objects").info("Handler 'rollout_changed' succeeded.")
    logging.getLogger("httpx").info("HTTP Request: GET ...")
    assert lines(out) == []
    logs.configure("json", verbose=True, stream=out)
    logging.getLogger("kopf.objects").info("Handler 'rollout_changed' succeeded.")
    assert len(lines(out)) == 1


def test_configuring_again_does_not_double_lines(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("json", stream=out)
    logs.configure("text", stream=out)
    logging.getLogger("rollouts.operator").warning("once")
    assert len(lines(out)) == 1


def test_text_for_people(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("text", stream=out)
    logging.getLogger("rollouts.operator").error(
        "pass failed", extra={"rollout": "shop/web", "error": "boom bang", "failures": 2})
    [line] = lines(out)
    assert " ERROR   shop/web: pass failed " in line
    assert 'error="boom bang" failures=2' in line


def test_a_traceback_is_one_field(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("json", stream=out)
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        logging.getLogger("rollouts.operator").exception("pass failed",
                                                        extra={"rollout": "shop/web"})
    [line] = lines(out)
    assert "RuntimeError: kaput" in json.loads(line)["traceback"]


def test_secrets_are_masked_in_every_encoding(restore_logging: None) -> None:
    secret = 'tok "en\\ s/ecret'
    out = io.StringIO()
    logs.configure("json", secrets=(secret,), stream=out)
    log = logging.getLogger("rollouts.operator")
    log.error("request failed with %s", secret, extra={"error": {"header": secret}})
    text = out.getvalue()
    assert "*****" in text
    assert not any(form in text for form in encodings(secret))


def test_an_unknown_format_is_refused(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="json, text"):
        logs.configure("xml")
