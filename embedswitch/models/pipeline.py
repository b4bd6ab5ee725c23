"""The encode pipeline of transformer models: tokenize once, sort by length, batch by tokens.

``encode_pipelined`` embeds a list of texts with a ``SentenceTransformer``:

1. the whole list is tokenized in one call of the fast (Rust) tokenizer, which spreads it over its
   own thread pool and releases the GIL meanwhile, without padding;
2. texts are sorted by token count, so a batch pads to a length close to all of its texts';
3. batches are formed by a token budget (``token_budget`` padded tokens each, at least one text),
   so short texts go in large batches and long ones in small, and the work per batch is even;
4. each batch runs through the model under ``torch.inference_mode``, in fp16 on a CUDA device
   (``torch.autocast``), where attention is PyTorch's SDPA (transformers' default for the BERT
   family); on a CPU in fp32, the same steps;
5. rows come back in the input order, L2-normalised.

What it changes against ``SentenceTransformer.encode`` is where the time goes, not the vectors:
padding to a batch's longest text does not change a text's pooled vector (the attention mask
hides the padding), and on a CPU the rows match within float tolerance.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import l2_normalize

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_TOKENS_PER_TEXT = 256
"""The token budget of a batch is ``batch_size`` times this (MiniLM's default ``max_seq_length``)."""


def token_batches(lengths: list[int], token_budget: int) -> Iterator[list[int]]:
    """Indexes of ``lengths`` in ascending length, in runs whose padded size (count times the
    longest, which is the last) stays within ``token_budget``; a text over it goes alone."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) + 1) * lengths[i] > token_budget:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def encode_pipelined(model: SentenceTransformer, texts: list[str], token_budget: int) -> np.ndarray:
    """``float32 [len(texts), dim]`` unit rows of ``texts`` (see the module)."""
    import torch

    tokenizer: Any = model.tokenizer
    encoded = tokenizer(
        texts,
        padding=False,
        truncation=True,
        max_length=model.max_seq_length,
        return_attention_mask=False,
        return_token_type_ids=False,
    )["input_ids"]
    device = model.device
    half = device.type == "cuda"
    rows: list[np.ndarray | None] = [None] * len(texts)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=half):
        for batch in token_batches([len(ids) for ids in encoded], token_budget):
            padded = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
            features = {name: tensor.to(device) for name, tensor in padded.items()}
            if "token_type_ids" in tokenizer.model_input_names:
                features["token_type_ids"] = torch.zeros_like(features["input_ids"])
            vectors = model(features)["sentence_embedding"].float().cpu().numpy()
            for row, i in enumerate(batch):
                rows[i] = vectors[row]
    return l2_normalize(np.stack([row for row in rows if row is not None]))
