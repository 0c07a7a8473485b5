"""Tool ablations: the same run repeated with tool sets switched off, one table at the end.

Tool-set specs, one per run: ``all`` (every tool), ``-ocr`` (every tool but ocr), ``ocr,clues``
(exactly those), ``all,-ocr,-clues``. EXIF is always off in evaluations unless asked for.

>>> [name for name, _ in parse_tool_sets(["all", "-ocr", "ocr,clues"])]
['all', 'all -ocr', 'ocr,clues']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from geolocate.agent.policies.base import Policy
from geolocate.agent.state import Budget
from geolocate.evals.datasets import Dataset
from geolocate.evals.metrics import evaluate_records
from geolocate.evals.report import flat_row, markdown_table, plot_error_cdf, write_csv
from geolocate.evals.runner import run_dataset
from geolocate.tools.registry import ToolSet


def parse_tool_sets(specs: Sequence[str], use_exif: bool = False) -> list[tuple[str, str]]:
    """(display name, tool spec for :meth:`ToolSet.parse_spec`) per ablation arm.

    Raises:
        UnknownToolError: a spec names an unknown tool (the message lists the valid ones).
    """
    out = []
    for s in specs:
        s = s.strip()
        spec = f"all,{s}" if s.startswith("-") else s
        if not use_exif:
            spec += ",-exif" if "exif" in ToolSet.parse_spec(spec).names else ""
        ToolSet.parse_spec(spec)  # validate now, before hours of running
        name = f"all {s.replace(',', ' ')}" if s.startswith("-") else s
        out.append((name, spec))
    return out


def run_ablation(
    dataset: Dataset,
    specs: Sequence[str],
    out_dir: str | Path,
    policy: str | Policy = "heuristic",
    budget: Budget | None = None,
    workers: int = 1,
    use_exif: bool = False,
    on_record: Callable[[str, dict[str, Any]], None] | None = None,
    force: bool = False,
) -> list[dict[str, object]]:
    """Run every tool set over the dataset (resumable: one JSONL per arm under ``out_dir``) and write
    ``ablation.md`` and ``ablation.csv`` with every metric and its 95% CI per tool set."""
    from geolocate.agent.policies import make_policy

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arms = parse_tool_sets(specs, use_exif)
    policy = make_policy(policy) if isinstance(policy, str) else policy
    runs: dict[str, list[dict]] = {}
    for name, spec in arms:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        cb = (lambda r, n=name: on_record(n, r)) if on_record else None
        runs[name] = list(
            run_dataset(
                dataset, policy, spec, budget, out / f"{safe}.jsonl", workers, on_record=cb, force=force
            )
        )
    rows = [
        {"tools": spec, **flat_row(name, evaluate_records(recs))}
        for (name, spec), recs in zip(arms, runs.values())
    ]
    write_csv(rows, out / "ablation.csv")
    (out / "ablation.md").write_text(
        f"# Tool ablation: {dataset.name}, policy {policy.name}\n\n" + markdown_table(rows) + "\n",
        encoding="utf-8",
    )
    plot_error_cdf(runs, out / "error_cdf.png")
    return rows
