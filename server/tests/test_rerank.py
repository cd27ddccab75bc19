"""The optional reranker at its seams: a real local HTTP server answering in
the TEI /rerank shape (well, down, slowly, malformed), and a real
sentence-transformers CrossEncoder (a tiny randomly initialised BERT built
here, no download). A failing reranker degrades to the un-reranked order,
is counted and logged once per interval, and never fails the search."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mnemo_server.app import build_index, build_reranker, build_store
from mnemo_server.config import ConfigError, load_settings
from mnemo_server.errors import FailedPreconditionError, InvalidArgumentError
from mnemo_server.models import Principal, Scope
from mnemo_server.rerank import RerankStage
from mnemo_server.rerank.http import HttpReranker
from mnemo_server.service import MemoryDraft, MemoryService, SearchMode, SearchQuery, WriteOp

from .test_score_adjustments import HashEmbedder

P = Principal(tenant="t")
SCOPE = Scope(user_id="rr")
TEXTS = ["apple pie recipe", "apple", "apple tart with apple jam and apple", "banana apple", "pear"]


class Endpoint:
    """A real HTTP server on a free port; `behaviour` decides each answer."""

    def __init__(self) -> None:
        self.behaviour = "ok"
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append(body)
                endpoint.headers.append(dict(self.headers))
                mode = endpoint.behaviour
                if mode == "slow":
                    time.sleep(1.5)
                if mode == "error":
                    self.send_response(503)
                    self.end_headers()
                    return
                texts = body["texts"]
                # Relevance = shorter is better, so the order differs from BM25's and the vector's.
                answer: Any = [{"index": i, "score": 1.0 / (1 + len(t))} for i, t in enumerate(texts)]
                answer.reverse()
                if mode == "not json":
                    payload = b"<html>oops</html>"
                else:
                    if mode == "missing":
                        answer = answer[1:]
                    elif mode == "duplicate":
                        answer[0]["index"] = answer[1]["index"]
                    elif mode == "nan":
                        answer[0]["score"] = "NaN"
                    payload = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/rerank"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.stop()


def make_service(tmp_path: Path, stage: RerankStage | None) -> MemoryService:
    settings = load_settings(env={}, overrides={"server.data_dir": str(tmp_path)})
    svc = MemoryService(
        store=build_store(settings),
        index=build_index(settings, 16),
        embedder=HashEmbedder(),
        settings=settings,
        snapshot_dir=tmp_path / "index",
        reranker=stage,
    )
    svc.load()
    for text in TEXTS:
        [out] = svc.write(P, [WriteOp("create", draft=MemoryDraft(scope=SCOPE, content=text))])
        assert out.error is None
    svc.write(P, [WriteOp("create", draft=MemoryDraft(scope=Scope(user_id="other"), content="a"))])
    return svc


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Callable[[RerankStage | None], MemoryService]]:
    made: list[MemoryService] = []

    def make(stage: RerankStage | None) -> MemoryService:
        made.append(make_service(tmp_path / str(len(made)), stage))
        return made[-1]

    yield make
    for svc in made:
        svc.store.close()


def search(svc: MemoryService, **kw: Any) -> list[tuple[str, float, Any]]:
    q = SearchQuery(text="apple", scope=SCOPE, mode=SearchMode.KEYWORD, explain=True, **kw)
    [result] = svc.search(P, [q])
    return [(h.memory.content, h.score, h.explanation) for h in result.hits]


def test_an_http_reranker_orders_the_top_candidates(services: Any, endpoint: Endpoint) -> None:
    stage = RerankStage(HttpReranker(endpoint.url, timeout_s=5, api_key="sekret"), top_n=3)
    svc = services(stage)
    plain = search(svc)
    reranked = search(svc, rerank=True, top_k=2)
    top3 = [c for c, _, _ in plain[:3]]
    assert endpoint.requests[-1] == {"query": "apple", "texts": top3}
    assert endpoint.headers[-1]["Authorization"] == "Bearer sekret"
    expected = sorted(top3, key=lambda t: (len(t), top3.index(t)))
    assert [c for c, _, _ in reranked] == expected[:2]  # the best top_k of the reranked top_n
    for content, score, e in reranked:
        assert score == pytest.approx(1.0 / (1 + len(content)))
        assert e.reranked is True and e.rerank_score == pytest.approx(score)
        assert e.keyword_rank is not None  # the earlier parts are still explained
    assert all(e.reranked is None for _, _, e in plain)
    assert stage.applied == 1 and sum(stage.failures.values()) == 0
    # Off unless asked (by_default is false), and rerank=false is the plain ranking.
    assert search(svc, rerank=False) == plain
    assert len(endpoint.requests) == 1


@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [
        ("down", "unavailable"),
        ("error", "unavailable"),
        ("slow", "timeout"),
        ("not json", "malformed"),
        ("missing", "malformed"),
        ("duplicate", "malformed"),
        ("nan", "malformed"),
    ],
)
def test_a_failing_reranker_degrades_to_the_plain_order(
    services: Any, endpoint: Endpoint, behaviour: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = endpoint.url
    if behaviour == "down":
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/rerank"
    endpoint.behaviour = behaviour
    stage = RerankStage(HttpReranker(url, timeout_s=0.3), top_n=3, log_interval_s=3600)
    svc = services(stage)
    plain = search(svc)
    with caplog.at_level(logging.WARNING, logger="mnemo.rerank"):
        for _ in range(3):
            got = search(svc, rerank=True, top_k=3)
            assert [(c, s) for c, s, _ in got] == [(c, s) for c, s, _ in plain[:3]]
            assert all(e.reranked is False and e.rerank_score is None for _, _, e in got)
    assert stage.failures[kind] == 3 and stage.applied == 0
    warnings = [r for r in caplog.records if r.name == "mnemo.rerank"]
    assert len(warnings) == 1  # once per interval, not once per search
    assert kind in warnings[0].getMessage()


def test_adjustments_apply_to_rerank_scores(services: Any, endpoint: Endpoint) -> None:
    from mnemo_server.adjust import Adjustments

    svc = services(RerankStage(HttpReranker(endpoint.url, timeout_s=5), top_n=5))
    pinned = search(svc, rerank=True, adjustments=Adjustments(pin_boost=0.0))
    for content, score, e in pinned:
        assert e.base_score == pytest.approx(1.0 / (1 + len(content)))
        assert e.rerank_score == pytest.approx(e.base_score) and score == pytest.approx(e.base_score)


def test_rerank_requests_a_reranker_and_query_text(services: Any) -> None:
    svc = services(None)
    with pytest.raises(FailedPreconditionError) as info:
        search(svc, rerank=True)
    assert info.value.reason == "RERANKER_NOT_CONFIGURED"
    assert search(svc, rerank=False) == search(svc)
    stage = RerankStage(HttpReranker("http://127.0.0.1:9/rerank", timeout_s=0.1), top_n=3)
    svc = services(stage)
    with pytest.raises(InvalidArgumentError) as bad:
        svc.search(P, [SearchQuery(vector=[1.0] + [0.0] * 15, scope=SCOPE, rerank=True)])
    assert bad.value.reason == "QUERY_REQUIRED"


def test_by_default_reranks_unless_a_request_opts_out(services: Any, endpoint: Endpoint) -> None:
    stage = RerankStage(HttpReranker(endpoint.url, timeout_s=5), top_n=2, by_default=True)
    svc = services(stage)
    assert all(e.reranked for _, _, e in search(svc))
    assert all(e.reranked is None for _, _, e in search(svc, rerank=False))
    assert len(endpoint.requests) == 1


def test_settings_build_the_reranker_and_refuse_bad_ones(tmp_path: Path, endpoint: Endpoint) -> None:
    key = tmp_path / "key"
    key.write_text("from-a-file\n")
    settings = load_settings(env={}, overrides={"rerank.url": endpoint.url, "rerank.api_key_file": str(key)})
    stage = build_reranker(settings)
    assert stage is not None and stage.top_n == 50 and not stage.by_default
    assert stage.reranker.score("q", ["a", "bb"]) == pytest.approx([0.5, 1 / 3])
    assert endpoint.headers[-1]["Authorization"] == "Bearer from-a-file"
    assert "from-a-file" not in repr(settings)
    assert build_reranker(load_settings(env={})) is None
    for overrides in (
        {"rerank.url": endpoint.url, "rerank.model_path": str(tmp_path)},
        {"rerank.url": "ftp://x"},
        {"rerank.model_path": str(tmp_path / "missing")},
        {"rerank.url": endpoint.url, "rerank.timeout_s": 0},
        {"rerank.url": endpoint.url, "rerank.top_n": 0},
    ):
        with pytest.raises(ConfigError):
            load_settings(env={}, overrides=overrides)


def tiny_cross_encoder(path: Path) -> Path:
    """A randomly initialised two-layer BERT with one output, saved as a CrossEncoder."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = sorted({w for t in TEXTS for w in t.split()} | {"apple"})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (path / "vocab.txt").parent.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(path / "vocab.txt"))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=1,
    )
    import torch

    torch.manual_seed(7)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_a_local_cross_encoder_reranks(
    services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    model_dir = tiny_cross_encoder(tmp_path / "ce")
    stage = build_reranker(load_settings(env={}, overrides={"rerank.model_path": str(model_dir)}))
    assert stage is not None
    from sentence_transformers import CrossEncoder

    oracle = CrossEncoder(str(model_dir), device="cpu", local_files_only=True)
    svc = services(RerankStage(stage.reranker, top_n=4))
    plain = search(svc)
    got = search(svc, rerank=True, top_k=4)
    top4 = [c for c, _, _ in plain[:4]]
    scores = [float(s) for s in oracle.predict([("apple", t) for t in top4])]
    expected = sorted(zip(top4, scores, strict=True), key=lambda x: (-x[1], top4.index(x[0])))
    assert [c for c, _, _ in got] == [c for c, _ in expected]
    assert [s for _, s, _ in got] == pytest.approx([s for _, s in expected], rel=1e-5)
    assert all(e.reranked for _, _, e in got)


def test_a_server_counts_reranker_failures_in_metrics(tmp_path: Path, embedder: Any) -> None:
    """Over real gRPC: a reranker that is down never fails the search, says
    so in the explanation, and shows in mnemo_rerank_failures_total."""
    from mnemo.v1 import memory_pb2 as m
    from mnemo.v1 import memory_service_pb2 as pb

    from .conftest import make_settings, start_server
    from .telemetry.scrape import scrape

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}/rerank"
    settings = make_settings(
        tmp_path, metrics={"address": "127.0.0.1:0"}, rerank={"url": down, "timeout_s": 0.5}
    )
    running = start_server(settings, embedder)
    try:
        running.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id="rr", content="Rita plays the oboe"))
        )
        request = pb.SearchMemoriesRequest(
            query="oboe", scope=m.Scope(user_id="rr"), rerank=True, explain=True
        )
        [hit] = running.memory.SearchMemories(request).hits
        assert hit.memory.content == "Rita plays the oboe"
        assert hit.explanation.HasField("reranked") and not hit.explanation.reranked
        metrics = scrape(running.app.telemetry.metrics_port)
        assert metrics.value("mnemo_rerank_failures_total", kind="unavailable") == 1
        assert metrics.value("mnemo_rerank_failures_total", kind="timeout") == 0
        assert metrics.value("mnemo_rerank_applied_total") == 0
    finally:
        running.stop()
