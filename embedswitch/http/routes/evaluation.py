"""Evaluation: versions on judged queries, a candidate on logged queries."""

from __future__ import annotations

from fastapi import APIRouter

from ...results import CandidateEvaluation, EvaluateResult
from ...specs import CandidateEvaluateRequest, EvaluateRequest
from ..bodies import JsonRoute
from ..deps import EngineDep

router = APIRouter(tags=["evaluation"], route_class=JsonRoute)


@router.post("/v1/collections/{c}/evaluate")
def evaluate(engine: EngineDep, c: str, body: EvaluateRequest) -> EvaluateResult:
    return engine.evaluate(c, body)


@router.post("/v1/collections/{c}/versions/{v}/evaluate")
def evaluate_candidate(
    engine: EngineDep, c: str, v: str, body: CandidateEvaluateRequest
) -> CandidateEvaluation:
    return engine.evaluate_candidate(c, v, body)
