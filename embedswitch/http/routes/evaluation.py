"""Evaluation: versions on judged queries, a candidate on logged queries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from ..._errors import Busy, Conflict, ModelUnavailable, NoLoggedQueries, VersionNotFound
from ...results import CandidateEvaluation, EvaluateResult
from ...specs import CandidateEvaluateRequest, EvaluateRequest
from .. import examples
from ..bodies import JsonRoute
from ..deps import EngineDep, HeavySlot
from ..examples import Collection, VersionName
from ..openapi import raises

router = APIRouter(tags=["evaluation"], route_class=JsonRoute)


@router.post("/v1/collections/{c}/evaluate", dependencies=[HeavySlot])
@raises(VersionNotFound, ModelUnavailable, Busy)
def evaluate(
    engine: EngineDep, c: Collection, body: Annotated[EvaluateRequest, examples.EVALUATE]
) -> EvaluateResult:
    return engine.evaluate(c, body)


@router.post("/v1/collections/{c}/versions/{v}/evaluate", dependencies=[HeavySlot])
@raises(Conflict, NoLoggedQueries, ModelUnavailable, Busy)
def evaluate_candidate(
    engine: EngineDep,
    c: Collection,
    v: VersionName,
    body: Annotated[CandidateEvaluateRequest, examples.EVALUATE_CANDIDATE],
) -> CandidateEvaluation:
    return engine.evaluate_candidate(c, v, body)
