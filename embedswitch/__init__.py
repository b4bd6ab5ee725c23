"""embedswitch: serve embedding search and recommendations, and make model upgrades routine."""

__version__ = "0.1.0"

from ._errors import (  # noqa: E402
    CollectionExists,
    CollectionNotFound,
    Conflict,
    EmbedswitchError,
    IndexMismatch,
    InvalidRequest,
    LastVersion,
    ModelUnavailable,
    NotCaughtUp,
    NotFound,
    NothingToRollBack,
    RecordNotFound,
    Unavailable,
    UnknownKind,
    UnknownModel,
    VersionExists,
    VersionHasTraffic,
    VersionNotFound,
    VersionNotReady,
)
from .client import Client  # noqa: E402
from .engine import Engine, EngineConfig  # noqa: E402
from .specs import RecordIn, VersionSpec  # noqa: E402

__all__ = [
    "Client",
    "CollectionExists",
    "CollectionNotFound",
    "Conflict",
    "EmbedswitchError",
    "Engine",
    "EngineConfig",
    "IndexMismatch",
    "InvalidRequest",
    "LastVersion",
    "ModelUnavailable",
    "NotCaughtUp",
    "NotFound",
    "NothingToRollBack",
    "RecordIn",
    "RecordNotFound",
    "Unavailable",
    "UnknownKind",
    "UnknownModel",
    "VersionExists",
    "VersionHasTraffic",
    "VersionNotFound",
    "VersionNotReady",
    "VersionSpec",
    "__version__",
]
