"""What a scoring run reports: rows in, scored and quarantined, timings and the model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScoreSummary:
    rows_in: int
    rows_scored: int
    rows_quarantined: int
    chunks: int
    chunks_resumed: int
    output: str
    quarantine: str
    model_uri: str
    model_version: str
    run_id: str
    feature_spec_hash: str
    seconds: float
    model_load_seconds: float = 0.0

    def line(self) -> str:
        return (
            f"rows in {self.rows_in:,} = scored {self.rows_scored:,} + quarantined {self.rows_quarantined:,} "
            f"({self.chunks} chunks, {self.chunks_resumed} resumed, {self.seconds:.1f} s of which model load "
            f"{self.model_load_seconds:.1f} s) -> {self.output}"
        )
