"""The public API: what ``import embedswitch`` offers is pinned, so a change to it is deliberate."""

from __future__ import annotations

import embedswitch


def test_all_is_pinned() -> None:
    assert sorted(embedswitch.__all__) == [
        "Busy",
        "Client",
        "CollectionExists",
        "CollectionNotFound",
        "Conflict",
        "EmbedswitchError",
        "Engine",
        "EngineConfig",
        "FeedbackIn",
        "Forbidden",
        "IndexMismatch",
        "IndexNotAllowed",
        "InputRejected",
        "InvalidRequest",
        "LastVersion",
        "LeaseLost",
        "ModelNotAllowed",
        "ModelNotInstalled",
        "ModelUnavailable",
        "NoLoggedQueries",
        "NotCaughtUp",
        "NotFound",
        "NothingToRollBack",
        "Overloaded",
        "PayloadTooLarge",
        "RateLimited",
        "RecordIn",
        "RecordNotFound",
        "RequestNotFound",
        "RolloutInProgress",
        "RolloutNotFound",
        "RolloutSpec",
        "TextNotSupported",
        "Unauthorized",
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


def test_every_exported_name_exists() -> None:
    for name in embedswitch.__all__:
        assert getattr(embedswitch, name) is not None
