"""What a model spec may reach on this machine: environment variables, local directories, URLs.

A spec comes from whoever may create a version, and it makes the server act: an ``openai`` spec
sends the value of the environment variable it names, as a bearer token, with every text, to the
URL it names; a ``sentence-transformers`` or ``model2vec`` spec opens the directory it names.
``ModelAccess.check`` refuses a spec that reaches beyond what the settings allow, before anything
is read, opened or sent, and its answer is the same whether or not a refused path exists.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .._access import KEY_ENV_PREFIX, name_allowed, url_under
from .._errors import ModelNotAllowed
from .openai import endpoint_url
from .specs import (
    HistoryMeanSpec,
    HybridSpec,
    Model2VecSpec,
    ModelSpec,
    NoneSpec,
    OpenAISpec,
    SentenceTransformersSpec,
)


@dataclass(frozen=True)
class ModelAccess:
    """The allowlists a spec is checked against (``EngineConfig`` builds one per engine).

    - ``key_envs``: the variables an ``openai`` spec may name as ``api_key_env``: exact names, or
      prefixes ending in ``*``.
    - ``model_dirs``: the directories a local model's ``path`` must lie in once symlinks and
      ``..`` are resolved. ``minilm`` and ``minilm-static`` name no path: they load from the
      installed package and embedswitch's cache, whatever this says.
    - ``urls``: prefixes an ``openai`` endpoint must fall under (same scheme, host and port, and a
      path under the prefix's path); None allows any URL.
    """

    key_envs: tuple[str, ...] = (f"{KEY_ENV_PREFIX}*",)
    model_dirs: tuple[Path, ...] = ()
    urls: tuple[str, ...] | None = None

    def check(self, spec: ModelSpec) -> None:
        """Raise ``ModelNotAllowed`` if ``spec``, or a model it wraps, reaches what is not allowed."""
        for part in _parts(spec):
            if isinstance(part, OpenAISpec):
                self._check_key_env(part)
                self._check_url(part)
            elif isinstance(part, SentenceTransformersSpec | Model2VecSpec):
                self._check_path(part)

    def key_env_allowed(self, name: str) -> bool:
        return name_allowed(name, self.key_envs)

    def path_allowed(self, path: str) -> bool:
        """Whether ``path``, with ``~``, symlinks and ``..`` resolved, lies in a model directory."""
        resolved = Path(os.path.realpath(Path(path).expanduser()))
        return any(resolved.is_relative_to(os.path.realpath(root)) for root in self.model_dirs)

    def url_allowed(self, url: str) -> bool:
        return self.urls is None or any(url_under(url, prefix) for prefix in self.urls)

    def _check_key_env(self, spec: OpenAISpec) -> None:
        if spec.api_key_env is None or self.key_env_allowed(spec.api_key_env):
            return
        allowed = ", ".join(self.key_envs) or "none"
        raise ModelNotAllowed(
            f"api_key_env {spec.api_key_env!r} of the openai model {spec.model!r} is not a variable "
            f"model specs may read (allowed: {allowed}); export the key as {KEY_ENV_PREFIX}<NAME> "
            "and name that, or allow the variable with EMBEDSWITCH_MODEL_KEY_ENVS "
            "(EngineConfig.model_key_envs)",
            model="openai",
        )

    def _check_url(self, spec: OpenAISpec) -> None:
        endpoint = endpoint_url(spec.url)
        if self.url_allowed(endpoint):
            return
        raise ModelNotAllowed(
            f"openai model URL {endpoint} is not under an allowed prefix ({', '.join(self.urls or ())}); "
            "use one of them, or add the endpoint's prefix to EMBEDSWITCH_MODEL_URLS "
            "(EngineConfig.model_urls)",
            model="openai",
        )

    def _check_path(self, spec: SentenceTransformersSpec | Model2VecSpec) -> None:
        if self.path_allowed(spec.path):
            return
        roots = ", ".join(str(root) for root in self.model_dirs) or "none"
        raise ModelNotAllowed(
            f"{spec.type} model path {spec.path!r} is outside the model directories ({roots}); put "
            "the model in one of them, or add its directory to EMBEDSWITCH_MODEL_DIRS "
            "(EngineConfig.model_dirs)",
            model=spec.type,
        )


def _parts(spec: ModelSpec) -> Iterator[ModelSpec]:
    """``spec`` and the text models it wraps."""
    yield spec
    if isinstance(spec, HistoryMeanSpec):
        yield spec.text
    elif isinstance(spec, NoneSpec) and spec.query is not None:
        yield spec.query
    elif isinstance(spec, HybridSpec):
        yield spec.dense
