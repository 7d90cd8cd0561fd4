"""Where the benchmarks write their results: ``benchmarks/results/NAME.{json,md}``."""

import json
import platform
from pathlib import Path

import jax
import numpy as np

RESULTS = Path(__file__).parent / "results"


def median_and_worst(ratios) -> str:
    """``median 1.23, worst 4.56`` of ratios where lower is better."""
    return f"median {np.median(ratios):.2f}, worst {np.max(ratios):.2f}"


def write(name: str, rows: list, report: str) -> None:
    """The rows (with the machine they ran on) as JSON, the report as Markdown."""
    RESULTS.mkdir(exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "jax": jax.__version__,
            "devices": str(jax.devices())}  # fmt: skip
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    (RESULTS / f"{name}.md").write_text(report + "\n")
