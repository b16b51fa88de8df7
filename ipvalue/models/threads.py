"""How many threads LightGBM predicts with: one for small inputs.

A valuation scores a few patents many times (each fee stage, each explanation). For so few rows,
starting and joining LightGBM's OpenMP threads costs more than the prediction: on the 2-core
reference machine a 3-row ``predict_proba`` took 8.2 ms with the model's two threads and 1.6 ms
with one, and one thread was still as fast at 5,000 rows (``python -m benchmarks.valuation``
prints the valuation step's time). Large batches (book scoring) keep the model's ``n_jobs``.
"""

from __future__ import annotations

#: Inputs with fewer rows than this are predicted on one thread.
SINGLE_THREAD_ROWS = 10_000


def predict_options(rows: int) -> dict:
    """Keyword arguments for a LightGBM ``predict`` / ``predict_proba`` of ``rows`` rows:
    ``{"num_threads": 1}`` below :data:`SINGLE_THREAD_ROWS`, else none (the model's own setting)."""
    return {"num_threads": 1} if rows < SINGLE_THREAD_ROWS else {}
