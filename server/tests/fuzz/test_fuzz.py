"""The fuzzing budget of the normal run (about 15 s): the parsers in process
under hypothesis, then the loopback fuzzer of run.py for a few seconds.
`python -m tests.fuzz.run --runs 1000000` is the long run (docs/testing.md)."""

from __future__ import annotations

import base64
import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnemo_server import filters
from mnemo_server.errors import InvalidArgumentError
from mnemo_server.pagination import decode_token, encode_token
from mnemo_server.service import parse_order_by

from . import generators as g
from .run import Fuzzer

EXAMPLES = int(os.environ.get("MNEMO_FUZZ_EXAMPLES", "300"))
SECONDS = float(os.environ.get("MNEMO_FUZZ_SECONDS", "6"))
REAL_TOKEN = encode_token("q", [5, "id"])
quick = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _refused_cleanly(reason: str, fn: object, *args: object) -> None:
    try:
        fn(*args)  # type: ignore[operator]
    except InvalidArgumentError as exc:
        assert exc.reason == reason


@quick
@given(st.one_of(st.text(), st.integers(0, 2**64).map(lambda seed: g.filter_text(random.Random(seed)))))
def test_a_filter_parses_or_is_invalid_filter(text: str) -> None:
    try:
        expr = filters.parse_filter(text)
    except InvalidArgumentError as exc:
        assert exc.reason == "INVALID_FILTER"
        return
    if expr is not None:
        # What parses formats to a filter that parses to the same tree, and compiles.
        formatted = filters.format_filter(expr)
        assert filters.format_filter(filters.parse_filter(formatted)) == formatted  # type: ignore[arg-type]
        filters.to_predicate(expr)


@quick
@given(st.one_of(st.text(), st.integers(0, 2**64).map(lambda seed: g.order_by(random.Random(seed)))))
def test_an_order_by_parses_or_is_invalid_order_by(text: str) -> None:
    _refused_cleanly("INVALID_ORDER_BY", parse_order_by, text)


@quick
@given(
    st.one_of(
        st.text(),
        st.binary().map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
        st.integers(0, 2**64).map(lambda seed: g.page_token(random.Random(seed), [REAL_TOKEN])),
    )
)
def test_a_page_token_decodes_to_its_shape_or_is_invalid_page_token(token: str) -> None:
    try:
        cursor = decode_token(token, "q", [int, str])
    except InvalidArgumentError as exc:
        assert exc.reason == "INVALID_PAGE_TOKEN"
        return
    if cursor is not None:
        assert type(cursor[0]) is int and type(cursor[1]) is str and len(cursor) == 2


def test_hostile_requests_to_every_rpc_never_get_internal_or_unknown() -> None:
    fuzzer = Fuzzer(seed=random.SystemRandom().randrange(2**32))
    report = fuzzer.run(1_000_000, seconds=SECONDS)
    summary = report.summary()
    assert report.ok, (fuzzer.seed, summary["failures"])
    assert report.cases >= 200, summary
    # Every kind of case ran, and some got through to the service.
    assert set(summary["kinds"]) == {"filter", "order_by", "page_token", "message", "bytes"}
    assert summary["codes"].get("OK", 0) > 0
