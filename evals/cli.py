"""``geolocate eval`` and ``geolocate ablate``: a policy over a benchmark, and tool-ablation tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from geolocate.agent.cli_common import (
    EXIT_ERROR,
    add_budget_args,
    add_policy_args,
    budget_from_args,
    fail,
    policy_from_args,
    positive_int,
    progress,
)
from geolocate.tools.files import OutputError, OutputTargetError, check_target

ABLATE_HELP = (
    "Each value of --tools is one arm (a tool set): 'all' (every tool), '-ocr' (all but ocr), "
    "'all,-ocr,-gazetteer' (all but those two), 'ocr,clues' (exactly those). Example: "
    "geolocate ablate --dataset osv5m --data DIR --tools all -ocr -gazetteer. EXIF stays off unless "
    "--use-exif."
)


def register(sub) -> None:
    """Add ``eval`` and ``ablate`` to the root parser's sub-parsers."""
    ev = sub.add_parser(
        "eval",
        help="evaluate a policy on a benchmark, or score a predictions CSV",
        description="Run a policy over a dataset (resumable) and report acc@1/25/200/750/2500 km, median "
        "km, "
        "GeoScore with 95%% bootstrap CIs, Chain-of-Region accuracy, localizability calibration and tool "
        "usage; "
        "or score external predictions.",
    )
    _dataset_args(ev)
    ev.add_argument(
        "--tools",
        default="all",
        metavar="LIST",
        help="tool set (default: all; EXIF stays off unless --use-exif)",
    )
    ev.add_argument(
        "--predictions",
        metavar="CSV",
        help="score this predictions CSV (id, lat, lon) against --labels instead",
    )
    ev.set_defaults(run=cmd_eval)
    ab = sub.add_parser(
        "ablate",
        help="a tool-ablation study: several tool sets on one benchmark, paired tests, one set of tables",
        description=ABLATE_HELP,
    )
    _dataset_args(ab)
    arms = ab.add_argument_group("arms (combine freely)")
    arms.add_argument(
        "--tools", action="append", default=[], metavar="SET", help="tool sets, one arm each (see above)"
    )
    arms.add_argument(
        "--set", action="append", default=[], metavar="NAME=TOOLS", help="a named arm, e.g. text=ocr,clues"
    )
    arms.add_argument("--base", metavar="TOOLS", help="the base tool set of --leave-one-out / --add-one-in")
    arms.add_argument(
        "--leave-one-out", action="store_true", help="arms: the base, and the base without each tool"
    )
    arms.add_argument(
        "--add-one-in", action="store_true", help="arms: the base, and the base with each other tool"
    )
    ab.add_argument(
        "--compare",
        nargs="+",
        metavar="DIR",
        help="join finished runs (eval or ablate --out folders, any policy or date) into one study in --out; "
        "runs nothing",
    )
    ab.set_defaults(run=cmd_ablate)


def rewrite_argv(argv: list[str]) -> list[str]:
    """``ablate --tools all -ocr -gazetteer``: tool sets such as ``-ocr`` look like options to argparse,
    so each value after ``--tools`` becomes ``--tools=VALUE``.

    >>> rewrite_argv(["ablate", "--data", "d", "--tools", "all", "-ocr", "--limit", "3"])
    ['ablate', '--data', 'd', '--tools=all', '--tools=-ocr', '--limit', '3']
    """
    if argv[:1] != ["ablate"] or "--tools" not in argv:
        return argv
    i = argv.index("--tools")
    j = next((k for k in range(i + 1, len(argv)) if argv[k].startswith("--")), len(argv))
    return argv[:i] + [f"--tools={v}" for v in argv[i + 1 : j]] + argv[j:]


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        default="csv",
        metavar="LAYOUT",
        help="benchmark layout: csv (with the column options), osv5m, im2gps3k, yfcc4k, mp16-pro, a "
        "plug-in's, "
        "or module:attr (default: csv)",
    )
    p.add_argument("--data", metavar="DIR", help="dataset folder (osv5m: DIR/labels.csv and DIR/images/)")
    p.add_argument(
        "--labels", metavar="CSV", help="labels CSV (im2gps3k, yfcc4k, mp16-pro, csv, or with --predictions)"
    )
    p.add_argument("--images", metavar="DIR", help="image folder (im2gps3k, yfcc4k, mp16-pro, csv)")
    p.add_argument("--id-col", default="id")
    p.add_argument("--lat-col", default="latitude")
    p.add_argument("--lon-col", default="longitude")
    p.add_argument(
        "--pattern", default="{id}.jpg", help="image file name for an id (csv layout; default: {id}.jpg)"
    )
    add_policy_args(p)
    p.add_argument("--limit", type=positive_int, help="only the first N photos")
    p.add_argument("--workers", type=positive_int, default=1, help="episodes in parallel (threads)")
    add_budget_args(p)
    p.add_argument(
        "--use-exif",
        action="store_true",
        help="let the agent read EXIF (off by default: the answer must not come from metadata)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="OUT holds results of a run with other settings: keep them as .bak and start afresh",
    )
    p.add_argument(
        "--dedupe",
        choices=["error", "first"],
        default="error",
        help="label ids that appear more than once: an error (default), or keep the first row",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default="eval-out",
        help="results folder: trajectories JSONL (resumable), tables, report (default: eval-out)",
    )


def dataset_from_args(args: argparse.Namespace):
    """The :class:`~geolocate.evals.datasets.Dataset` the options name (:func:`load_dataset`)."""
    from geolocate.evals.datasets import load_dataset

    return load_dataset(
        args.dataset,
        data=args.data,
        labels=args.labels,
        images=args.images,
        id_col=args.id_col,
        lat_col=args.lat_col,
        lon_col=args.lon_col,
        pattern=args.pattern,
        limit=args.limit,
        dedupe=args.dedupe,
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from geolocate.evals.datasets import load_prediction_records
    from geolocate.evals.metrics import evaluate_records
    from geolocate.evals.report import flat_row, markdown_table, write_report
    from geolocate.evals.runner import run_dataset
    from geolocate.tools.registry import ToolSet

    out = Path(args.out)
    try:
        check_target(out, folder=True)
        if args.predictions:
            if not args.labels:
                raise ValueError("--predictions needs --labels CSV")
            recs = load_prediction_records(args.predictions, args.labels)
            name = Path(args.predictions).stem
        else:
            ds = dataset_from_args(args)
            ToolSet.parse_spec(args.tools)  # the user's mask as written ("" is an error)
            spec = args.tools if args.use_exif else f"{args.tools},-exif"
            policy = policy_from_args(args)
            name = f"{policy.name} ({args.tools})"
            recs = []
            with progress(ds.name) as bar:
                task = bar.add_task("eval", total=len(ds))
                for r in run_dataset(
                    ds,
                    policy,
                    spec,
                    budget_from_args(args),
                    out / "trajectories.jsonl",
                    args.workers,
                    seed=args.seed or 0,
                    force=args.force,
                ):
                    recs.append(r)
                    bar.advance(task)
        if not any("pred_lat" in r for r in recs):
            errors = [r["error"] for r in recs if "error" in r]
            first = f": {errors[0]}" if errors else ""
            raise ValueError(
                f"no photo could be evaluated ({len(recs)} record(s), none with a prediction){first}"
            )
        print(markdown_table([flat_row(name, evaluate_records(recs))]))
        report = write_report(out, {name: recs})
    except OutputTargetError as e:
        return fail(e)
    except OutputError as e:
        return fail(e, EXIT_ERROR)
    except KeyError as e:
        return fail(e.args[0])
    except (FileNotFoundError, ValueError) as e:
        return fail(e)
    print(f"\nreport: {report}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from geolocate.evals.ablation import load_runs, run_ablation, study_arms, write_study

    out = Path(args.out)
    try:
        check_target(out, folder=True)
        if args.compare:
            runs, specs = load_runs(args.compare)
            write_study(runs, out, f"Comparison of {len(runs)} runs", specs)
        else:
            arms = study_arms(
                args.tools, args.set, args.base, args.leave_one_out, args.add_one_in, args.use_exif
            )
            ds = dataset_from_args(args)
            policy = policy_from_args(args)
            marginal = "leave_one_out" if args.leave_one_out else "add_one_in" if args.add_one_in else None
            with progress("ablation") as bar:
                task = bar.add_task("ablate", total=len(ds) * len(arms))
                run_ablation(
                    ds,
                    arms,
                    out,
                    policy,
                    budget_from_args(args),
                    args.workers,
                    args.use_exif,
                    on_record=lambda n, r: bar.advance(task),
                    force=args.force,
                    base="base" if args.base else None,
                    marginal=marginal,
                )
    except OutputTargetError as e:
        return fail(e)
    except OutputError as e:
        return fail(e, EXIT_ERROR)
    except KeyError as e:
        return fail(e.args[0])
    except (FileNotFoundError, ValueError) as e:
        return fail(e)
    print((out / "ablation.md").read_text(encoding="utf-8"))
    print(f"tables: {out / 'ablation.md'}, {out / 'ablation.csv'}, {out / 'ablation.tex'}; plots in {out}")
    return 0
