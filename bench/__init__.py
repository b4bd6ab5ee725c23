"""Benchmarks of embedswitch, run by ``python -m bench [--quick] [--only NAME ...] [--results DIR]``.

Each benchmark is a module with ``run(quick: bool) -> dict`` that returns

- ``params``: what was measured (sizes, models, engine settings);
- ``tables``: ``{title: [row, ...]}``, rows being flat dicts; the runner prints them as they are;
- ``summary``: the headline numbers, repeated in the final summary;
- ``notes`` (optional): caveats that go with the numbers.

The runner adds the machine, the date and the elapsed time and writes ``bench/results/<name>.json``,
so every number printed is in the file. ``--quick`` runs small sizes with fast models (a smoke run,
under a minute on a quiet machine); the full run is meant for a quiet machine.
"""

BENCHMARKS = (
    "ingest",
    "search_latency",
    "quality",
    "lexical",
    "evaluation",
    "backfill",
    "executors",
    "durable_pages",
    "shadow",
    "sensitivity",
    "recommend_quality",
    "recommend_serving",
    "soak",
    "serving",
    "auth",
    "index",
    "index_memory",
    "pgvector_index",
    "engine_indexes",
    "cluster",
    "filtered_search",
)
"""In the order the runner runs them; ``index`` is ``bench/bench_index.py``."""
