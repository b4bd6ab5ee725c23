"""Token estimates and request packing, for models behind an endpoint with provider limits.

A hosted model's tokenizer can't be downloaded here, so the estimate is a bound that holds for
every subword tokenizer in use (byte-level BPE such as OpenAI's, SentencePiece, WordPiece): a token
covers at least one byte of the UTF-8 text, so a text has at most as many tokens as bytes, plus
``SPECIAL_TOKENS`` a model may add around it. The bound is conservative: English prose runs about
four bytes per token with OpenAI's tokenizers, so requests carry fewer texts than the provider
would take and a throttle in tokens stays well under the provider's count; in exchange no text
is ever over a limit because of the estimate.

The rule for a text over the per-input limit: it is split into consecutive chunks within the limit
(at the last whitespace of a chunk's second half when there is one, never inside a character),
each chunk is embedded, and the text's vector is the mean of the chunks' vectors weighted by their
size, scaled to unit length (OpenAI's documented recipe for long inputs). Nothing is cut off.
"""

from __future__ import annotations

from collections.abc import Sequence

SPECIAL_TOKENS = 2
"""Tokens a model may add to every input (a start and an end marker), counted in each estimate."""

MIN_INPUT_TOKENS = 16
"""The smallest per-input limit a spec may set: room for any character plus the special tokens."""


def estimate_tokens(text: str) -> int:
    """At least the number of tokens any subword tokenizer makes of ``text`` (see the module)."""
    return len(text.encode("utf-8")) + SPECIAL_TOKENS


def split_text(text: str, max_tokens: int) -> list[str]:
    """``text`` in consecutive chunks of at most ``max_tokens`` estimated tokens each (``[text]``
    when it fits); chunks of whitespace alone are dropped unless nothing else is left."""
    budget = max(MIN_INPUT_TOKENS, max_tokens) - SPECIAL_TOKENS
    chunks: list[str] = []
    rest = text
    while estimate_tokens(rest) > max_tokens:
        cut = rest.encode("utf-8")[:budget].decode("utf-8", errors="ignore")  # whole characters
        space = max(cut.rfind(" "), cut.rfind("\n"), cut.rfind("\t"))
        if space >= len(cut) // 2:
            cut = cut[: space + 1]
        chunks.append(cut)
        rest = rest[len(cut) :]
    chunks.append(rest)
    kept = [chunk for chunk in chunks if chunk.strip()]
    return kept or chunks[:1]


def pack(costs: Sequence[int], max_inputs: int, max_tokens: int) -> list[range]:
    """Consecutive runs of inputs, in order, each with at most ``max_inputs`` inputs and at most
    ``max_tokens`` summed ``costs`` (an input costing more than that goes alone)."""
    runs: list[range] = []
    start, total = 0, 0
    for i, cost in enumerate(costs):
        if i > start and (i - start >= max_inputs or total + cost > max_tokens):
            runs.append(range(start, i))
            start, total = i, 0
        total += cost
    if start < len(costs):
        runs.append(range(start, len(costs)))
    return runs
