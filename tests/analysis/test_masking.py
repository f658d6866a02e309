"""Secret masking covers every encoding a secret is quoted in (pure)."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import subprocess
import sys
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rollouts
from rollouts.analysis.masking import MASK, mask

SECRETS = ['plain-token', 'has"quote', "back\\slash", "it's", 'mix"\\\'/+= ü\n']


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(
    "render",
    [
        lambda s: s,
        lambda s: json.dumps({"v": s}),
        lambda s: json.dumps({"v": s}, ensure_ascii=False),
        lambda s: repr({"v": s}),
        lambda s: f"error: {repr(s)!r}",
        lambda s: json.dumps(json.dumps(s)),
        lambda s: "http://x/?t=" + quote(s, safe=""),
        lambda s: "http://x/?t=" + quote_plus(s),
        lambda s: "Basic " + base64.b64encode(s.encode()).decode(),
        lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
    ],
    ids=["raw", "json", "json-utf8", "repr", "repr-twice", "json-twice", "url", "url-plus",
         "base64", "base64url"],
)
def test_every_encoding_is_masked(secret: str, render: object) -> None:
    assert callable(render)
    text = render(secret)
    masked = mask(text, {secret})
    assert MASK in masked
    assert secret not in masked and json.dumps(secret)[1:-1] not in masked
    assert repr(secret)[1:-1] not in masked


@given(
    st.text(alphabet="\"\\'xyz/+ \n\u00fc", min_size=4, max_size=20),
    st.text(alphabet="abc", max_size=30),
)
def test_masked_text_never_holds_any_form(secret: str, around: str) -> None:
    text = around + json.dumps({"v": secret}) + around + repr(secret) + quote(secret) + secret
    masked = mask(text, {secret})
    for form in (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], quote(secret)):
        assert form not in masked


def test_text_without_secrets_is_unchanged() -> None:
    assert mask("nothing here", {"token"}) == "nothing here"
    assert mask("x", set()) == "x"


def test_overlapping_forms_of_one_length_mask_the_same_under_every_hash_seed() -> None:
    """"ab" and "bc" overlap in "abc": which is replaced first decides what stays. The
    order is lexicographic among forms of one length, never the set's (hash seed) order."""
    here = str(pathlib.Path(rollouts.__file__).resolve().parents[1])  # this checkout's
    script = ("from rollouts.analysis.masking import mask; "
              "print(mask('abc xbcx abc', ['bc', 'ab']))")
    seen = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       check=True, env={**os.environ, "PYTHONHASHSEED": str(seed),
                                                    "PYTHONPATH": here}).stdout
        for seed in range(12)
    }
    assert seen == {f"{MASK}c x{MASK}x {MASK}c\n"}
    assert mask("abc", {"bc", "ab"}) == mask("abc", {"ab", "bc"}) == f"{MASK}c"
