"""The live experiment: feedback, report, reset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from ..._errors import RequestNotFound
from ...results import ExperimentReport, FeedbackAck
from ...specs import FeedbackIn
from .. import examples
from ..bodies import JsonRoute
from ..deps import EngineDep
from ..examples import Collection
from ..openapi import raises

router = APIRouter(tags=["experiments"], route_class=JsonRoute)


@router.post("/v1/collections/{c}/feedback")
@raises(RequestNotFound)
def feedback(engine: EngineDep, c: Collection, body: Annotated[FeedbackIn, examples.FEEDBACK]) -> FeedbackAck:
    return engine.feedback(c, body)


@router.get("/v1/collections/{c}/experiment")
def experiment(engine: EngineDep, c: Collection) -> ExperimentReport:
    return engine.experiment(c)


@router.post("/v1/collections/{c}/experiment/reset")
def reset_experiment(engine: EngineDep, c: Collection) -> ExperimentReport:
    return engine.reset_experiment(c)
