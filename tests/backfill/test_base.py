"""The embed step is a plain value: it pickles (so it can run in another process) and embeds with
the model its spec names, exactly as the version's own model does."""

from __future__ import annotations

import pickle

import numpy as np

from embedswitch.backfill import EmbedStep
from embedswitch.models import load_model, parse_model_spec


def test_embed_step_pickles_and_embeds_like_the_model() -> None:
    spec = parse_model_spec({"type": "hashing", "dim": 64, "seed": 3})
    step = EmbedStep.of(spec)
    again = pickle.loads(pickle.dumps(step))
    assert again == step
    texts = ["rotate the api keys", "quarterly revenue"]
    expected = load_model(spec).encode(texts, purpose="document")
    np.testing.assert_array_equal(again(texts), expected)


def test_equal_specs_give_equal_steps() -> None:
    assert EmbedStep.of(parse_model_spec("hashing")) == EmbedStep.of(parse_model_spec({"type": "hashing"}))
