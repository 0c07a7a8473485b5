"""Tool-ablation studies: one benchmark, several tool sets (arms), one set of tables and plots.

Arms come from explicit tool sets (``--tools all -ocr`` or ``--set NAME=TOOLS``) or from a base set:
leave-one-out (the base, and the base without each of its tools) and add-one-in (the base, and the
base with each other tool). Every arm runs with the same resumable runner as ``geolocate eval`` (one
JSONL per arm), so a study can be stopped and resumed, and finished runs of any date and policy can be
joined later (:func:`load_runs` + :func:`write_study`).

The tables give, per arm, every metric with its 95% bootstrap interval and the costs (tool calls,
tool seconds and wall seconds per episode, model tokens when the planner reports them); the best arm
per metric is marked, and so are the arms not significantly different from it on the same photos
(paired tests, :mod:`geolocate.evals.paired`). With a base set, the marginal contribution of each tool
(base vs base minus the tool, or base plus the tool vs base) is given with its paired interval and
p-value. Formats: Markdown, CSV and LaTeX (booktabs); plots: error CDF, accuracy by level with
intervals, marginal contributions.

Tool-set specs: ``all`` (every built-in tool), ``-ocr`` (every tool but ocr), ``ocr,clues`` (exactly
those), ``all,-ocr,-clues``. EXIF is always off in evaluations unless asked for.

>>> [name for name, _ in parse_tool_sets(["all", "-ocr", "ocr,clues"])]
['all', 'all -ocr', 'ocr,clues']
>>> [name for name, _ in study_arms(base="ocr,clues,gazetteer", leave_one_out=True)]
['base', '-ocr', '-clues', '-gazetteer']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geolocate.agent.policies.base import Policy
from geolocate.agent.state import Budget
from geolocate.evals.datasets import Dataset
from geolocate.evals.metrics import THRESHOLDS_KM, evaluate_records
from geolocate.evals.paired import compare
from geolocate.evals.report import flat_row, plot_error_cdf, write_csv
from geolocate.evals.runner import read_header, read_jsonl, run_dataset
from geolocate.tools.files import save_figure, write_output
from geolocate.tools.registry import ToolSet, builtin

ALPHA = 0.05
"""Significance level of the paired tests that mark arms as not different from the best."""
MAIN_METRICS = ["geoscore", *(f"acc@{t}km" for t in THRESHOLDS_KM), "median_km"]


def parse_tool_sets(specs: Sequence[str], use_exif: bool = False) -> list[tuple[str, str]]:
    """(display name, tool spec for :meth:`ToolSet.parse_spec`) per ablation arm.

    Raises:
        UnknownToolError: a spec names an unknown tool (the message lists the valid ones).
    """
    out = []
    for s in specs:
        s = s.strip()
        name, _, body = s.partition("=") if "=" in s else ("", "", s)
        spec = f"all,{body}" if body.startswith("-") else body
        out.append(
            (
                name or (f"all {body.replace(',', ' ')}" if body.startswith("-") else body),
                _exif(spec, use_exif),
            )
        )
    return out


def _exif(spec: str, use_exif: bool) -> str:
    if not use_exif and "exif" in ToolSet.parse_spec(spec).names:
        spec += ",-exif"
    ToolSet.parse_spec(spec)  # validate now, before hours of running
    return spec


def study_arms(
    tool_sets: Sequence[str] = (),
    named: Sequence[str] = (),
    base: str | None = None,
    leave_one_out: bool = False,
    add_one_in: bool = False,
    use_exif: bool = False,
) -> list[tuple[str, str]]:
    """The arms of a study, (name, tool spec), in order, without duplicates.

    ``tool_sets``: specs as for ``--tools``; ``named``: ``NAME=TOOLS``; ``base`` with
    ``leave_one_out`` adds the base and the base minus each of its tools (named ``-tool``), with
    ``add_one_in`` the base and the base plus each other built-in tool (``+tool``).

    Raises:
        ValueError: no arm; UnknownToolError: an unknown tool.
    """
    arms = parse_tool_sets(tool_sets, use_exif) + parse_tool_sets(named, use_exif)
    if base is not None:
        base_spec = _exif(base, use_exif)
        members = ToolSet.parse_spec(base_spec).names
        arms.append(("base", base_spec))
        if leave_one_out:
            arms += [(f"-{t}", _exif(f"{base_spec},-{t}", use_exif)) for t in members]
        if add_one_in:
            others = [t for t in builtin() if t not in members and (use_exif or t != "exif")]
            arms += [(f"+{t}", _exif(f"{base_spec},{t}", use_exif)) for t in others]
    elif leave_one_out or add_one_in:
        raise ValueError("--leave-one-out and --add-one-in need --base TOOLS")
    seen, out = set(), []
    for name, spec in arms:
        if name not in seen:
            seen.add(name)
            out.append((name, spec))
    if not out:
        raise ValueError(
            "no arm to run: give --tools, --set NAME=TOOLS, or --base with --leave-one-out/--add-one-in"
        )
    return out


def costs(records: Sequence[Mapping]) -> dict[str, float]:
    """Mean costs per episode: tool calls, failed tool calls, tool seconds, wall seconds, and model
    tokens (prompt, completion) where the planner reported them."""
    n = max(1, len(records))
    out = {
        "tool_calls": sum(sum(r.get("tool_calls", {}).values()) for r in records) / n,
        "tool_failures": sum(sum(r.get("tool_failures", {}).values()) for r in records) / n,
        "tool_s": sum(
            sum(e.get("elapsed_s", 0.0) for e in (r.get("trajectory") or {}).get("evidence", []))
            for r in records
        )
        / n,
        "wall_s": sum(float(r.get("seconds", 0.0)) for r in records) / n,
    }
    turns = [t for r in records for t in (r.get("trajectory") or {}).get("turns", [])]
    if any(t.get("usage") for t in turns):
        out["prompt_tokens"] = sum((t.get("usage") or {}).get("prompt_tokens", 0) for t in turns) / n
        out["completion_tokens"] = sum((t.get("usage") or {}).get("completion_tokens", 0) for t in turns) / n
    return out


def run_ablation(
    dataset: Dataset,
    specs: Sequence[str] | Sequence[tuple[str, str]],
    out_dir: str | Path,
    policy: str | Policy = "heuristic",
    budget: Budget | None = None,
    workers: int = 1,
    use_exif: bool = False,
    on_record: Callable[[str, dict[str, Any]], None] | None = None,
    force: bool = False,
    base: str | None = None,
    marginal: str | None = None,
) -> list[dict[str, object]]:
    """Run every arm over the dataset (resumable: one JSONL per arm under ``out_dir``) and write the
    study (:func:`write_study`). ``specs``: tool-set specs, or (name, spec) pairs from
    :func:`study_arms`; ``base`` names the base arm and ``marginal`` ("leave_one_out" or
    "add_one_in") the marginal-contribution table to make. Returns the per-arm table rows."""
    from geolocate.agent.policies import make_policy

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arms = [a for a in specs if isinstance(a, tuple)] or parse_tool_sets(list(specs), use_exif)
    policy = make_policy(policy) if isinstance(policy, str) else policy
    runs: dict[str, list[dict]] = {}
    for name, spec in arms:
        label = "plus_" + name[1:] if name[:1] == "+" else "minus_" + name[1:] if name[:1] == "-" else name
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)
        cb = (lambda r, n=name: on_record(n, r)) if on_record else None
        runs[name] = list(
            run_dataset(
                dataset, policy, spec, budget, out / f"{safe}.jsonl", workers, on_record=cb, force=force
            )
        )
    title = f"Tool ablation: {dataset.name}, policy {policy.name}"
    return write_study(runs, out, title, dict(arms), base=base, marginal=marginal)


def load_runs(dirs: Sequence[str | Path]) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Finished runs from result folders (``geolocate eval --out`` or ``ablate --out``): every JSONL of
    records in them, named by the folder (and file, for ablation arms). Returns (runs, tool specs).

    Raises:
        FileNotFoundError: a folder without result files.
    """
    runs: dict[str, list[dict]] = {}
    specs: dict[str, str] = {}
    for d in map(Path, dirs):
        files = sorted(d.glob("*.jsonl")) if d.is_dir() else []
        if not files:
            raise FileNotFoundError(
                f"{d}: no results (*.jsonl) here; run geolocate eval or ablate into it first"
            )
        for f in files:
            recs = read_jsonl(f)
            if not recs:
                continue
            header = read_header(f) or {}
            name = d.name if f.stem == "trajectories" else f"{d.name}/{f.stem}"
            runs[name] = recs
            policy = header.get("policy", recs[0].get("policy", "?"))
            specs[name] = f"{policy}: {header.get('tools', recs[0].get('tools', '?'))}"
    return runs, specs


def write_study(
    runs: Mapping[str, Sequence[Mapping]],
    out: Path,
    title: str,
    specs: Mapping[str, str] | None = None,
    base: str | None = None,
    marginal: str | None = None,
) -> list[dict[str, object]]:
    """Tables (``ablation.md``, ``ablation.csv``, ``ablation.tex``, and ``marginal.csv`` with a base)
    and plots (``error_cdf.png``, ``accuracy.png``, ``marginal.png``) for finished runs."""
    out.mkdir(parents=True, exist_ok=True)
    names = list(runs)
    rows = []
    for name in names:
        row = {
            "run": name,
            "tools": (specs or {}).get(name, ""),
            **flat_row(name, evaluate_records(runs[name])),
        }
        row.update({f"cost_{k}": v for k, v in costs(runs[name]).items()})
        rows.append(row)
    marks = significance_marks(runs, rows)
    for row in rows:
        row["marks"] = " ".join(f"{m}:{k}" for k, m in sorted(marks.get(row["run"], {}).items()))
    write_csv(rows, out / "ablation.csv")
    contrib = marginal_contributions(runs, base, marginal) if base and marginal else []
    if contrib:
        write_csv(contrib, out / "marginal.csv")
    md = [f"# {title}", "", runs_markdown(rows, marks), ""]
    md += ["**bold**: best arm; ~: not significantly different from the best on the same photos "
           f"(paired test, p >= {ALPHA}). Intervals: 95% bootstrap.", ""]  # fmt: skip
    if contrib:
        md += [
            f"## Marginal contribution of each tool ({marginal.replace('_', '-')}, paired)",
            "",
            marginal_markdown(contrib),
            "",
        ]
    write_output(out / "ablation.md", "\n".join(md))
    write_output(out / "ablation.tex", latex_tables(rows, marks, contrib, title))
    plot_error_cdf(runs, out / "error_cdf.png")
    plot_accuracy(rows, out / "accuracy.png")
    if contrib:
        plot_marginal(contrib, out / "marginal.png")
    return rows


def significance_marks(
    runs: Mapping[str, Sequence[Mapping]], rows: Sequence[Mapping]
) -> dict[str, dict[str, str]]:
    """Per run and metric: ``best`` for the best arm, ``same`` for arms whose paired test against the
    best has p >= :data:`ALPHA` (GeoScore: permutation test; acc@k: exact McNemar)."""
    if len(rows) < 2:
        return {}
    marks: dict[str, dict[str, str]] = {r["run"]: {} for r in rows}
    for metric in MAIN_METRICS[:-1]:
        best = max(rows, key=lambda r: r[metric])["run"]
        marks[best][metric] = "best"
        for r in rows:
            if r["run"] == best:
                continue
            diffs = {d.metric: d for d in compare(runs[best], runs[r["run"]])}
            if diffs[metric].p >= ALPHA:
                marks[r["run"]][metric] = "same"
    return marks


def marginal_contributions(
    runs: Mapping[str, Sequence[Mapping]], base: str, kind: str
) -> list[dict[str, object]]:
    """One row per tool: the paired difference its presence makes, with interval and p-value, for
    GeoScore and each acc@k. Leave-one-out: base - (base minus tool); add-one-in: (base plus tool) - base."""
    rows = []
    for name in runs:
        if name == base or name[:1] not in "+-":
            continue
        with_tool, without = (runs[base], runs[name]) if kind == "leave_one_out" else (runs[name], runs[base])
        row: dict[str, object] = {"tool": name[1:], "n": 0}
        for d in compare(with_tool, without):
            row["n"] = d.n
            row[d.metric], row[f"{d.metric}_lo"], row[f"{d.metric}_hi"], row[f"{d.metric}_p"] = (
                d.diff,
                d.lo,
                d.hi,
                d.p,
            )
        rows.append(row)
    return sorted(rows, key=lambda r: -float(r["geoscore"]))


def _cell(
    metric: str, v: float, lo: float | None = None, hi: float | None = None, signed: bool = False
) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    sign = "+" if signed and v > 0 else ""
    if metric.startswith("acc@"):
        s = f"{sign}{100 * v:.1f}%"
        return s + (f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None else "")
    s = f"{sign}{v:.0f}"
    return s + (f" [{lo:.0f}, {hi:.0f}]" if lo is not None else "")


COST_COLUMNS = {
    "cost_tool_calls": "tool calls",
    "cost_tool_s": "tool s",
    "cost_wall_s": "wall s",
    "cost_prompt_tokens": "prompt tok",
    "cost_completion_tokens": "compl. tok",
}


def runs_markdown(rows: Sequence[Mapping], marks: Mapping[str, Mapping[str, str]]) -> str:
    """The per-arm table: metrics with intervals and marks, then costs per episode."""
    costs_ = [c for c in COST_COLUMNS if any(c in r for r in rows)]
    head = ["run", "tools", "n", *MAIN_METRICS, *(COST_COLUMNS[c] for c in costs_)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["run"]), f"`{r['tools']}`", str(r["n"])]
        for m in MAIN_METRICS:
            s = _cell(m, r[m], r.get(f"{m}_lo"), r.get(f"{m}_hi"))
            mark = marks.get(r["run"], {}).get(m)
            cells.append(f"**{s}**" if mark == "best" else f"{s} ~" if mark == "same" else s)
        cells += [f"{float(r[c]):.2f}" if c in r else "" for c in costs_]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def marginal_markdown(contrib: Sequence[Mapping]) -> str:
    """The marginal-contribution table: each metric's paired difference [interval] and p-value."""
    metrics = ["geoscore", "acc@25km", "acc@200km", "acc@750km", "acc@2500km"]
    lines = [
        "| tool | n | " + " | ".join(f"Δ {m} | p" for m in metrics) + " |",
        "|" + "---|" * (2 + 2 * len(metrics)),
    ]
    for r in contrib:
        cells = [str(r["tool"]), str(r["n"])]
        for m in metrics:
            cells += [_cell(m, r[m], r[f"{m}_lo"], r[f"{m}_hi"], signed=True), f"{r[f'{m}_p']:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _tex(s: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("~", r"$\sim$"),
    ):
        s = s.replace(a, b)
    return s


def latex_tables(rows: Sequence[Mapping], marks, contrib: Sequence[Mapping], title: str) -> str:
    """The tables as LaTeX (``booktabs``: ``\\toprule``, ``\\midrule``, ``\\bottomrule``)."""
    metrics = ["geoscore", "acc@25km", "acc@200km", "acc@750km", "acc@2500km", "median_km"]
    out = [
        f"% {title}",
        "% needs \\usepackage{booktabs}",
        r"\begin{tabular}{l" + "r" * (len(metrics) + 2) + "}",
        r"\toprule",
    ]
    out.append("Run & $n$ & " + " & ".join(_tex(m) for m in metrics) + r" & Tool s \\")
    out.append(r"\midrule")
    for r in rows:
        cells = [_tex(str(r["run"])), str(r["n"])]
        for m in metrics:
            s = _tex(_cell(m, r[m]))
            mark = marks.get(r["run"], {}).get(m)
            cells.append(
                rf"\textbf{{{s}}}" if mark == "best" else s + (r"$^\dagger$" if mark == "same" else "")
            )
        cells.append(f"{float(r.get('cost_tool_s', 0.0)):.2f}")
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", ""]
    if contrib:
        ms = ["geoscore", "acc@25km", "acc@750km", "acc@2500km"]
        out += [r"\begin{tabular}{l" + "r" * len(ms) + "}", r"\toprule"]
        out.append("Tool & " + " & ".join(rf"$\Delta$ {_tex(m)}" for m in ms) + r" \\")
        out.append(r"\midrule")
        for r in contrib:
            cells = [_tex(str(r["tool"]))] + [
                _tex(_cell(m, r[m], signed=True)) + (r"$^*$" if r[f"{m}_p"] < ALPHA else "") for m in ms
            ]
            out.append(" & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", f"% *: paired test p < {ALPHA}", ""]
    return "\n".join(out)


def plot_accuracy(rows: Sequence[Mapping], path: Path) -> Path:
    """Accuracy at each level (acc@1..2500 km) per arm, with 95% bootstrap intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [f"acc@{t}km" for t in THRESHOLDS_KM]
    x = np.arange(len(levels))
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for i, r in enumerate(rows):
        v = np.array([r[k] for k in levels]) * 100
        err = np.array([[r[k] - r[f"{k}_lo"], r[f"{k}_hi"] - r[k]] for k in levels]).T * 100
        ax.bar(x + i * width - 0.4 + width / 2, v, width, yerr=err, capsize=2, label=str(r["run"]))
    ax.set_xticks(x, [f"{k}\n({lab})" for k, lab in zip(levels, THRESHOLDS_KM.values())], fontsize=8)
    ax.set_ylabel("share of photos within the distance (%)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path


def plot_marginal(contrib: Sequence[Mapping], path: Path) -> Path:
    """Each tool's marginal contribution to GeoScore with its paired 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(contrib)))
    y = np.arange(len(contrib))
    v = np.array([float(r["geoscore"]) for r in contrib])
    err = np.array(
        [
            [float(r["geoscore"]) - float(r["geoscore_lo"]), float(r["geoscore_hi"]) - float(r["geoscore"])]
            for r in contrib
        ]
    ).T
    ax.barh(y, v, xerr=err, capsize=3, color=["#2a9d3a" if x >= 0 else "#d1342f" for x in v])
    ax.set_yticks(y, [str(r["tool"]) for r in contrib])
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("Δ GeoScore from the tool (paired, 95% interval)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path
