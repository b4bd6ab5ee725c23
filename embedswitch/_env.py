"""Settings from ``EMBEDSWITCH_<FIELD>`` environment variables, decoded by pydantic-settings.

The one reader of the environment for every settings model (``EngineConfig``, ``HttpConfig`` and
the server's ``ServerSettings``): names are case-insensitive, an empty value counts as unset,
``null`` means None, and a list is comma-separated (``CommaSeparated``).
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from pydantic import BaseModel, BeforeValidator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode

PREFIX = "EMBEDSWITCH_"
NULL = "null"
"""The value that sets an optional setting to None, in a variable, a ``--set`` flag or the file."""


def variable(field: str) -> str:
    """The environment variable of a setting: ``apply_batch`` -> ``EMBEDSWITCH_APPLY_BATCH``."""
    return PREFIX + field.upper()


def env_values(model: type[BaseModel]) -> dict[str, Any]:
    """The fields of ``model`` that ``EMBEDSWITCH_<FIELD>`` variables set, ready to validate."""
    source = EnvSettingsSource(
        cast("type[BaseSettings]", model),  # reads only the fields and config of any pydantic model
        case_sensitive=False,
        env_prefix=PREFIX,
        env_ignore_empty=True,
        env_parse_none_str=NULL,
    )
    return source()


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaSeparated = Annotated[list[str], NoDecode, BeforeValidator(_split)]
"""A list setting: a list in code or the file, ``a,b,c`` in a variable or a flag."""
