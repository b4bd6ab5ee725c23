"""The live experiment: feedback, report, reset."""

from __future__ import annotations

from fastapi import APIRouter

from ...results import ExperimentReport, FeedbackAck
from ...specs import FeedbackIn
from ..bodies import JsonRoute
from ..deps import EngineDep

router = APIRouter(tags=["experiments"], route_class=JsonRoute)


@router.post("/v1/collections/{c}/feedback")
def feedback(engine: EngineDep, c: str, body: FeedbackIn) -> FeedbackAck:
    return engine.feedback(c, body)


@router.get("/v1/collections/{c}/experiment")
def experiment(engine: EngineDep, c: str) -> ExperimentReport:
    return engine.experiment(c)


@router.post("/v1/collections/{c}/experiment/reset")
def reset_experiment(engine: EngineDep, c: str) -> ExperimentReport:
    return engine.reset_experiment(c)
