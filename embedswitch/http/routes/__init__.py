"""One router per noun of the API."""

from fastapi import APIRouter

from . import (
    collections,
    evaluation,
    experiments,
    ops,
    quarantine,
    records,
    rollouts,
    search,
    traffic,
    versions,
)

ROUTERS: list[APIRouter] = [
    ops.router,
    collections.router,
    records.router,
    search.router,
    versions.router,
    quarantine.router,
    traffic.router,
    experiments.router,
    rollouts.router,
    evaluation.router,
]
