"""What an index spec may reach on this machine: engine servers, and the environment variables
that hold their keys.

A ``qdrant`` spec names the server at ``url`` and, in ``api_key_env``, the variable whose value it
sends as Qdrant's API key; a ``milvus`` spec names ``uri`` and ``token_env`` (Milvus's token, or
``user:password``). Specs are stored and shown by the API, so they carry variable names, never the
keys: ``engine_key`` reads the value when the index opens. ``IndexAccess.check`` refuses a spec that
reaches beyond what the settings allow, before any variable is read or any server contacted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from embedswitch._access import KEY_ENV_PREFIX, name_allowed, url_under
from embedswitch._errors import IndexNotAllowed, InvalidRequest
from embedswitch.index.specs import IndexSpec, MilvusSpec, QdrantSpec

KEY_ENVS_SETTING = "EMBEDSWITCH_INDEX_KEY_ENVS"
URLS_SETTING = "EMBEDSWITCH_INDEX_URLS"


@dataclass(frozen=True)
class IndexAccess:
    """The allowlists an index spec is checked against (``EngineConfig.index_access`` builds one).

    - ``key_envs``: the variables a spec may name as ``api_key_env`` (qdrant) or ``token_env``
      (milvus): exact names, or prefixes ending in ``*``.
    - ``urls``: prefixes a Qdrant ``url`` or Milvus ``uri`` must fall under (same scheme, host and
      port, and a path under the prefix's path); None allows any server.
    """

    key_envs: tuple[str, ...] = (f"{KEY_ENV_PREFIX}*",)
    urls: tuple[str, ...] | None = None

    def check(self, spec: IndexSpec) -> None:
        """Raise ``IndexNotAllowed`` if ``spec`` names a server or a variable the settings don't
        allow, and ``InvalidRequest`` if the variable it names is not set; reads no value, contacts
        nothing."""
        server = engine_server(spec)
        if server is None:
            return
        field, url = server
        if self.urls is not None and not any(url_under(url, prefix) for prefix in self.urls):
            raise IndexNotAllowed(
                f"{spec.type} index {field} {url} is not under an allowed prefix "
                f"({', '.join(self.urls) or 'none'}); use one of them, or add the server's prefix to "
                f"{URLS_SETTING} (EngineConfig.index_urls)",
                index=spec.type,
            )
        key = _key_field(spec)
        if key is None:
            return
        name, env = key
        if not name_allowed(env, self.key_envs):
            raise IndexNotAllowed(
                f"{name} {env!r} of the {spec.type} index is not a variable index specs may read "
                f"(allowed: {', '.join(self.key_envs) or 'none'}); export the key as "
                f"{KEY_ENV_PREFIX}<NAME> and name that, or allow the variable with {KEY_ENVS_SETTING} "
                "(EngineConfig.index_key_envs)",
                index=spec.type,
            )
        engine_key(spec)


def engine_server(spec: IndexSpec) -> tuple[str, str] | None:
    """``(field, url)`` of the engine server a spec names (``url`` of qdrant, ``uri`` of milvus), or
    None for an index without one."""
    if isinstance(spec, QdrantSpec) and spec.url is not None:
        return "url", spec.url
    if isinstance(spec, MilvusSpec) and spec.uri is not None:
        return "uri", spec.uri
    return None


def engine_key(spec: IndexSpec) -> str | None:
    """The key the spec's variable holds now (None when it names none); ``InvalidRequest`` naming
    the variable when it is not set. The value goes to the engine's client only."""
    key = _key_field(spec)
    if key is None:
        return None
    name, env = key
    value = os.environ.get(env)
    if not value:
        raise InvalidRequest(
            f"environment variable {env!r} ({name} of the {spec.type} index) is not set on this "
            f"server; export the {spec.type} server's key under that name and restart, or name "
            "another variable",
            index=spec.type,
        )
    return value


def key_variable(spec: IndexSpec) -> str | None:
    """The variable that holds the key of the spec's engine server, if it names one."""
    key = _key_field(spec)
    return None if key is None else key[1]


def _key_field(spec: IndexSpec) -> tuple[str, str] | None:
    if isinstance(spec, QdrantSpec) and spec.api_key_env is not None:
        return "api_key_env", spec.api_key_env
    if isinstance(spec, MilvusSpec) and spec.token_env is not None:
        return "token_env", spec.token_env
    return None
