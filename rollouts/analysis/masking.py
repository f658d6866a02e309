"""Masking secret values in anything the controller writes or logs (pure).

A secret rarely reaches a message as the bytes it was stored as: a web provider's value is
JSON (`"` becomes `\\"`), an error quotes it with `repr` (`\\` doubled, `'` switching the
quotes), a URL carries it percent-encoded, a header base64-encoded. Replacing only the raw
text leaks every other form, so `mask` replaces each form `encodings` lists, longest first
(a longer form may contain a shorter one), forms of one length in lexicographic order (so
the output does not depend on the hash seed).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "encodings", "mask"]

MASK: Final = "*****"


def _escaped(text: str) -> set[str]:
    """`text` as it appears inside a JSON string or a Python repr."""
    forms = {
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
        repr(text)[1:-1],
        text.replace("\\", "\\\\").replace("'", "\\'"),  # repr when the text forces '...'
        text.replace("\\", "\\\\").replace('"', '\\"'),
    }
    return forms


def encodings(secret: str) -> set[str]:
    """Every form of `secret` worth masking: raw, JSON-escaped, repr, escaped twice (an
    error quoting an error), URL-encoded, and base64 (standard and URL-safe, padded or not).
    """
    if not secret:
        return set()
    forms = {secret}
    for once in _escaped(secret):
        forms.add(once)
        forms |= _escaped(once)
    forms |= {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    raw = secret.encode()
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode()
        forms |= {text, text.rstrip("=")}
    forms.discard("")
    return forms


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with every encoding of every secret replaced by MASK."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= encodings(secret)
    # Longest first (a longer form may contain a shorter one), then in text order: forms
    # of one length may overlap in `text`, and which goes first must not depend on the
    # set's order (the hash seed).
    for form in sorted(forms, key=lambda form: (-len(form), form)):
        text = text.replace(form, MASK)
    return text
