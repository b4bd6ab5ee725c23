"""Retrieval metrics on hand-checked cases, a reference implementation, and BEIR loading."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from conftest import SCIFACT, needs_scifact

from embedswitch.evaluation.beir import document_text, load_beir, load_judgments
from embedswitch.evaluation.metrics import (
    evaluate_run,
    jaccard,
    mrr_at_k,
    ndcg_at_k,
    rank_biased_overlap,
    recall_at_k,
    score_query,
)
from embedswitch.evaluation.offline import summarize


def log2(x: float) -> float:
    return math.log(x, 2)


# -- nDCG ----------------------------------------------------------------------------------------


def test_ndcg_binary_relevance() -> None:
    # relevant a, b found at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); ideal puts them at 1 and 2
    dcg = 1 / log2(3) + 1 / log2(5)
    idcg = 1 / log2(2) + 1 / log2(3)
    assert ndcg_at_k(["x", "a", "y", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["x", "a", "y", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(0.6509209298)


def test_ndcg_perfect_and_nothing_relevant() -> None:
    assert ndcg_at_k(["a", "b", "x"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y"], {"a": 1}, 10) == 0.0


def test_ndcg_graded_gains_are_the_relevance_itself() -> None:
    # rels a=2, b=1; ranking [b, a]: DCG = 1/log2(2) + 2/log2(3); ideal [a, b]: 2/log2(2) + 1/log2(3)
    dcg = 1 / log2(2) + 2 / log2(3)
    idcg = 2 / log2(2) + 1 / log2(3)
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["a", "b"], {"a": 2, "b": 1}, 10) == pytest.approx(1.0)


def test_ndcg_zero_and_negative_judgments_count_as_irrelevant() -> None:
    # c judged 0, d judged -1: no gain in DCG, not in the ideal ranking either
    rels = {"a": 1, "c": 0, "d": -1}
    assert ndcg_at_k(["c", "d", "a"], rels, 10) == pytest.approx((1 / log2(4)) / 1)


def test_ndcg_truncates_at_k_both_ranking_and_ideal() -> None:
    rels = {"a": 1, "b": 1, "c": 1}
    # k=2, ranking [a, x, b, c]: only a counts, DCG = 1; ideal cut at 2: 1 + 1/log2(3)
    assert ndcg_at_k(["a", "x", "b", "c"], rels, 2) == pytest.approx(1 / (1 + 1 / log2(3)))
    # k=1, a relevant doc at rank 2 is outside the cut
    assert ndcg_at_k(["x", "a"], rels, 1) == 0.0
    # ideal cut at k: three relevant docs but k=1, so finding one at rank 1 is perfect
    assert ndcg_at_k(["b"], rels, 1) == pytest.approx(1.0)


def test_ndcg_counts_a_repeated_id_once() -> None:
    # [a, a, b] is read as [a, b]: perfect, not above 1
    assert ndcg_at_k(["a", "a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)
    # the repeat does not push b out of the cut either: top-2 distinct ids are a, b
    assert ndcg_at_k(["a", "a", "b"], {"a": 1, "b": 1}, 2) == pytest.approx(1.0)


def test_empty_ranking_and_empty_judgments_score_zero() -> None:
    for metric in (ndcg_at_k, recall_at_k, mrr_at_k):
        assert metric([], {"a": 1}, 10) == 0.0
        assert metric(["a"], {}, 10) == 0.0
        assert metric(["a"], {"a": 0}, 10) == 0.0


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        ndcg_at_k(["a"], {"a": 1}, 0)


# -- recall and MRR ------------------------------------------------------------------------------


def test_recall() -> None:
    rels = {"a": 1, "b": 2, "c": 1, "z": 0}
    # a and b in the top 3, c at rank 5: 2/3 at k=3, 3/3 at k=5; z (judged 0) is not relevant
    assert recall_at_k(["a", "z", "b", "x", "c"], rels, 3) == pytest.approx(2 / 3)
    assert recall_at_k(["a", "z", "b", "x", "c"], rels, 5) == pytest.approx(1.0)
    assert recall_at_k(["x"], rels, 100) == 0.0


def test_mrr() -> None:
    rels = {"a": 1, "b": 1}
    assert mrr_at_k(["x", "y", "b", "a"], rels, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["a"], rels, 10) == 1.0
    assert mrr_at_k(["x", "y", "b"], rels, 2) == 0.0
    assert mrr_at_k(["x", "z"], {"x": 0, "z": 3}, 10) == pytest.approx(1 / 2)


# -- evaluate_run --------------------------------------------------------------------------------


def test_evaluate_run_averages_over_the_judged_queries() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    run = {
        "q1": ["a", "x"],  # ndcg 1, recall 1, mrr 1
        "q2": ["x", "b"],  # ndcg 1/log2(3), recall 1, mrr 1/2
        # q3 missing: counts as 0
        "q4": ["a"],  # not judged: ignored
    }
    scores = evaluate_run(run, qrels, [1, 10])
    assert set(scores) == {"ndcg@1", "ndcg@10", "recall@1", "recall@10", "mrr@1", "mrr@10"}
    assert scores["ndcg@10"] == pytest.approx((1 + 1 / log2(3) + 0) / 3)
    assert scores["recall@10"] == pytest.approx(2 / 3)
    assert scores["mrr@10"] == pytest.approx((1 + 1 / 2) / 3)
    assert scores["ndcg@1"] == pytest.approx(1 / 3)
    assert scores["recall@1"] == pytest.approx(1 / 3)
    assert scores["mrr@1"] == pytest.approx(1 / 3)


def test_evaluate_run_with_no_results_at_all_is_zero() -> None:
    scores = evaluate_run({}, {"q1": {"a": 1}}, [10])
    assert scores == {"ndcg@10": 0.0, "recall@10": 0.0, "mrr@10": 0.0}


def test_evaluate_run_rejects_empty_inputs() -> None:
    with pytest.raises(ValueError, match="k_values"):
        evaluate_run({}, {"q1": {"a": 1}}, [])
    with pytest.raises(ValueError, match="qrels"):
        evaluate_run({"q1": ["a"]}, {}, [10])


# -- cross-check against a straightforward reference ---------------------------------------------


def reference_ndcg(ranked: list[str], rels: dict[str, int], k: int) -> float:
    """Textbook nDCG@k written independently: gains list, then discounted sums."""
    gains = [rels.get(d, 0) if rels.get(d, 0) > 0 else 0 for d in ranked[:k]]
    dcg = 0.0
    for i, g in enumerate(gains):
        dcg += g / math.log2(i + 2)
    ideal_gains = sorted([g for g in rels.values() if g > 0], reverse=True)[:k]
    idcg = 0.0
    for i, g in enumerate(ideal_gains):
        idcg += g / math.log2(i + 2)
    return 0.0 if idcg == 0 else dcg / idcg


def reference_recall(ranked: list[str], rels: dict[str, int], k: int) -> float:
    relevant = [d for d, g in rels.items() if g > 0]
    if not relevant:
        return 0.0
    return sum(1 for d in relevant if d in ranked[:k]) / len(relevant)


def reference_mrr(ranked: list[str], rels: dict[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0) > 0:
            return 1 / (i + 1)
    return 0.0


def test_metrics_match_a_reference_on_random_rankings() -> None:
    rng = random.Random(1234)
    docs = [f"d{i}" for i in range(40)]
    for _ in range(200):
        judged = rng.sample(docs, rng.randint(0, 12))
        rels = {d: rng.choice([-1, 0, 1, 1, 2, 3]) for d in judged}
        ranked = rng.sample(docs, rng.randint(0, 30))  # distinct ids, as a search returns
        for k in (1, 3, 5, 10, 100):
            assert ndcg_at_k(ranked, rels, k) == pytest.approx(reference_ndcg(ranked, rels, k))
            assert recall_at_k(ranked, rels, k) == pytest.approx(reference_recall(ranked, rels, k))
            assert mrr_at_k(ranked, rels, k) == pytest.approx(reference_mrr(ranked, rels, k))
            assert 0.0 <= ndcg_at_k(ranked, rels, k) <= 1.0 + 1e-12


# -- BEIR loading --------------------------------------------------------------------------------


def write_beir(root: Path) -> None:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "Title one", "text": "Body one.", "metadata": {}}\n'
        '{"_id": "d2", "title": "", "text": "Body two."}\n'
        '{"_id": 3, "text": "Body three."}\n',
        encoding="utf-8",
    )
    (root / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "first?"}\n'
        '{"_id": "q2", "text": "second?"}\n'
        '{"_id": "q3", "text": "third?"}\n',
        encoding="utf-8",
    )
    (root / "qrels" / "test.tsv").write_bytes(
        b"query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td2\t2\r\nq3\t3\t1\r\n"
    )
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td2\t1\n", encoding="utf-8")


def test_load_beir(tmp_path: Path) -> None:
    write_beir(tmp_path)
    corpus, queries, qrels = load_beir(tmp_path)
    assert list(corpus) == ["d1", "d2", "3"]
    assert corpus["d1"] == {"title": "Title one", "text": "Body one."}
    assert corpus["3"] == {"title": "", "text": "Body three."}
    assert queries == {"q1": "first?", "q3": "third?"}  # only the queries judged in the split
    assert qrels == {"q1": {"d1": 1, "d2": 2}, "q3": {"3": 1}}  # CRLF endings and header handled
    _, train_queries, train_qrels = load_beir(tmp_path, split="train")
    assert train_queries == {"q2": "second?"}
    assert train_qrels == {"q2": {"d2": 1}}
    (tmp_path / "corpus.jsonl").unlink()
    assert load_judgments(tmp_path) == (queries, qrels)  # the same, without the corpus


def test_document_text_joins_title_and_text_like_mteb() -> None:
    assert document_text({"title": "Title one", "text": "Body one."}) == "Title one Body one."
    assert document_text({"title": "", "text": "Body two."}) == "Body two."


def test_load_beir_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="corpus.jsonl"):
        load_beir(tmp_path)
    write_beir(tmp_path)
    with pytest.raises(FileNotFoundError, match="dev.tsv"):
        load_beir(tmp_path, split="dev")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq9\td1\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="q9"):
        load_beir(tmp_path)


@needs_scifact
def test_load_scifact() -> None:
    corpus, queries, qrels = load_beir(SCIFACT)
    assert len(corpus) == 5183
    assert len(queries) == len(qrels) == 300
    assert sum(len(rels) for rels in qrels.values()) == 339
    assert all(doc_id in corpus for rels in qrels.values() for doc_id in rels)


# -- agreement between rankings: Jaccard and rank-biased overlap ---------------------------------


def test_jaccard() -> None:
    assert jaccard(["a", "b", "c"], ["c", "b", "a"]) == 1.0
    assert jaccard(["a", "b"], ["b", "c"]) == pytest.approx(1 / 3)
    assert jaccard(["a"], ["b"]) == 0.0
    assert jaccard([], []) == 1.0


def test_rbo_identical_disjoint_and_empty() -> None:
    for k in (1, 3, 10):
        ranking = [f"d{i}" for i in range(k)]
        assert rank_biased_overlap(ranking, ranking) == pytest.approx(1.0)
        assert rank_biased_overlap(ranking, [f"x{i}" for i in range(k)]) == 0.0
    assert rank_biased_overlap([], []) == 1.0
    assert rank_biased_overlap(["a"], []) == 0.0


def test_rbo_hand_computed() -> None:
    # [a, b, c] vs [a, c, b], p = 0.9: overlaps X1 = 1, X2 = 1, X3 = 3;
    # RBO_ext = (1-p)/p * (1/1 p + 1/2 p^2 + 3/3 p^3) + (3/3) p^3
    expected = (0.1 / 0.9) * (0.9 + 0.81 / 2 + 0.729) + 0.729
    assert rank_biased_overlap(["a", "b", "c"], ["a", "c", "b"]) == pytest.approx(expected)
    assert expected == pytest.approx(0.955)
    # a swap at the top costs more than the same swap lower down
    top = rank_biased_overlap(["a", "b", "c", "d"], ["b", "a", "c", "d"])
    low = rank_biased_overlap(["a", "b", "c", "d"], ["a", "b", "d", "c"])
    assert top < low < 1.0


def test_rbo_of_lists_of_different_lengths() -> None:
    # Webber et al. eq. 32: a list that is a prefix of the other agrees with it all the way
    assert rank_biased_overlap(["a", "b"], ["a", "b", "c", "d"]) == pytest.approx(1.0)
    assert rank_biased_overlap(["a", "x"], ["a", "b", "c"]) == pytest.approx(
        rank_biased_overlap(["a", "b", "c"], ["a", "x"])
    )
    assert 0.0 < rank_biased_overlap(["a", "x"], ["a", "b", "c"]) < 1.0


def reference_rbo(a: list[str], b: list[str], p: float) -> float:
    """Equal lengths k: the infinite RBO sum with the agreement at depth k carried on forever."""
    k = len(a)
    agreement = [len(set(a[:d]) & set(b[:d])) / d for d in range(1, k + 1)]
    head = (1 - p) * sum(p ** (d - 1) * agreement[d - 1] for d in range(1, k + 1))
    return head + p**k * agreement[-1]


def test_rbo_matches_a_reference_on_random_rankings() -> None:
    rng = random.Random(99)
    docs = [f"d{i}" for i in range(30)]
    for _ in range(200):
        k = rng.randint(1, 15)
        a, b = rng.sample(docs, k), rng.sample(docs, k)
        for p in (0.5, 0.9, 0.98):
            assert rank_biased_overlap(a, b, p) == pytest.approx(reference_rbo(a, b, p))
            assert rank_biased_overlap(a, b, p) == pytest.approx(rank_biased_overlap(b, a, p))
            assert 0.0 <= rank_biased_overlap(a, b, p) <= 1.0 + 1e-12


def test_rbo_rejects_a_bad_persistence() -> None:
    with pytest.raises(ValueError, match="p must be"):
        rank_biased_overlap(["a"], ["a"], 1.0)


# -- per-query scores and their summary ----------------------------------------------------------


def test_score_query_cuts_ndcg_and_mrr_at_k_and_recall_at_100() -> None:
    ranked = [f"x{i}" for i in range(50)] + ["a"]  # a at rank 51
    scores = score_query(ranked, {"a": 1}, 10)
    assert scores == {"ndcg@10": 0.0, "recall@100": 1.0, "mrr@10": 0.0}
    assert score_query(["a"], {"a": 1}, 5) == {"ndcg@5": 1.0, "recall@100": 1.0, "mrr@5": 1.0}


def test_summarize_means_and_latency_percentiles() -> None:
    rows = {
        "q1": {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0, "latency_ms": 1.0},
        "q2": {"ndcg@10": 0.5, "recall@100": 0.0, "mrr@10": 0.25, "latency_ms": 3.0},
    }
    summary = summarize(rows, 10)
    assert summary["ndcg@10"] == 0.75 and summary["recall@100"] == 0.5 and summary["mrr@10"] == 0.625
    assert summary["queries"] == 2
    assert summary["latency_ms"] == {"p50": 2.0, "p99": pytest.approx(2.98)}
    with pytest.raises(ValueError, match="no queries"):
        summarize({}, 10)
