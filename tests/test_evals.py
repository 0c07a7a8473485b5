"""Evaluation: metrics against hand-computed values, the OSV-5M baseline figures, loaders, the
resumable runner, ablation and the report."""

from __future__ import annotations

import csv
import json
import math

import pytest

from geolocate.agent.cli import main
from geolocate.evals.datasets import load_csv, load_osv5m, load_prediction_records
from geolocate.evals.metrics import (
    chain_accuracy,
    evaluate_records,
    geoscore,
    localizability_calibration,
    median_km,
    summarize,
    tool_usage,
)
from geolocate.evals.runner import read_jsonl, run_dataset


def test_metrics_hand_computed():
    d = [0.5, 10.0, 100.0, 1000.0, 5000.0, 20000.0]
    s = summarize(d)
    assert s["acc@1km"] == pytest.approx(1 / 6)
    assert s["acc@25km"] == pytest.approx(2 / 6)
    assert s["acc@200km"] == pytest.approx(3 / 6)
    assert s["acc@750km"] == pytest.approx(3 / 6)
    assert s["acc@2500km"] == pytest.approx(4 / 6)
    assert s["median_km"] == 1000.0  # upper median of an even count
    assert s["mean_km"] == pytest.approx(26110.5 / 6)
    expected = sum(5000 * math.exp(-x / 1492.7) for x in d) / 6
    assert s["geoscore"] == pytest.approx(expected)
    assert geoscore(1492.7) == pytest.approx(5000 / math.e)
    assert summarize([25.0])["acc@25km"] == 1.0  # a hit is d <= threshold
    assert median_km([3.0, 1.0, 2.0]) == 2.0


def test_calibration_and_tool_usage_hand_computed():
    c = localizability_calibration([0.9, 0.2, 0.6, 0.4], [10, 30, 5, 100])
    # hits: 1, 0, 1, 0; positives (0.9, 0.6) outrank negatives (0.2, 0.4) in 4/4 pairs
    assert c["loc_auroc"] == 1.0
    assert c["loc_brier"] == pytest.approx((0.01 + 0.04 + 0.16 + 0.16) / 4)
    assert math.isnan(localizability_calibration([0.1, 0.2], [1, 2])["loc_auroc"])
    u = tool_usage(
        [
            {"tool_calls": {"ocr": 1, "gazetteer": 3}, "tool_failures": {"gazetteer": 1}},
            {"tool_calls": {"ocr": 1}},
        ]
    )
    assert u["ocr"] == {"calls_per_episode": 1.0, "failure_rate": 0.0}
    assert u["gazetteer"]["calls_per_episode"] == 1.5 and u["gazetteer"]["failure_rate"] == pytest.approx(
        1 / 3
    )


def test_chain_accuracy_is_hierarchical():
    # Vaduz vs Schaan (same country, other admin-1); Lyon vs Paris (same country, other region).
    acc = chain_accuracy(
        [(47.1415, 9.5215), (45.7640, 4.8357), (0.0, -160.0)],
        [(47.1415, 9.5215), (48.8566, 2.3522), (47.1667, 9.5097)],
    )
    assert acc == {
        "country_acc": pytest.approx(2 / 3),
        "region_acc": pytest.approx(1 / 3),
        "city_acc": pytest.approx(1 / 3),
    }


def test_osv5m_baseline_figures_are_reproduced(osv_dir):
    recs = load_prediction_records(osv_dir / "osv5m_baseline_predictions.csv", osv_dir / "labels.csv")
    m = {k: v[0] for k, v in evaluate_records(recs)["metrics"].items()}
    assert round(100 * m["acc@25km"], 1) == 19.4
    assert round(100 * m["acc@200km"], 1) == 47.2
    assert round(100 * m["acc@750km"], 1) == 66.7
    assert round(100 * m["acc@2500km"], 1) == 88.9
    assert abs(m["median_km"] - 415) <= 1
    assert abs(m["geoscore"] - 3421) <= 1


def test_eval_cli_scores_external_predictions(osv_dir, tmp_path, capsys):
    rc = main(
        [
            "eval",
            "--predictions",
            str(osv_dir / "osv5m_baseline_predictions.csv"),
            "--labels",
            str(osv_dir / "labels.csv"),
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "19.4%" in out and "3421" in out
    assert (tmp_path / "report.md").exists() and (tmp_path / "error_cdf.png").stat().st_size > 10_000
    with open(tmp_path / "metrics.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["acc@750km"]) == pytest.approx(24 / 36)


def test_im2gps3k_swapped_header_is_detected(tmp_path, plain_photo, caplog):
    imgs = tmp_path / "img"
    imgs.mkdir()
    rows = []
    for i in range(120):
        (imgs / f"{i}.jpg").write_bytes(b"x")
        rows.append((f"{i}.jpg", 100.0 + i / 10, 10.0 + i / 100))  # LAT holds longitudes > 90
    with open(tmp_path / "im2gps3k_places365.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["IMG_ID", "LAT", "LON"])
        w.writerows(rows)
    from geolocate.evals.datasets import load_im2gps3k

    ds = load_im2gps3k(tmp_path / "im2gps3k_places365.csv", imgs)
    assert ds.samples[0].lat == 10.0 and ds.samples[0].lon == 100.0
    assert "swapped" in caplog.text
    with pytest.raises(KeyError, match="columns are"):
        load_csv(tmp_path / "im2gps3k_places365.csv", imgs, "id", "LAT", "LON")


def test_runner_resumes_a_killed_run_without_redoing_photos(osv_dir, tmp_path):
    ds = load_osv5m(osv_dir).subset(3)
    out = tmp_path / "traj.jsonl"
    first = list(run_dataset(ds.subset(2), tools="clues,gazetteer", out=out))
    with open(out, "a") as f:
        f.write('{"id": "truncated')  # the process was killed mid-write
    seen = []
    recs = list(run_dataset(ds, tools="clues,gazetteer", out=out, on_record=lambda r: seen.append(r["id"])))
    assert [r["id"] for r in recs] == [s.id for s in ds]
    assert seen == [ds.samples[2].id]  # only the unfinished photo ran
    assert recs[:2] == first
    assert len(read_jsonl(out)) == 3
    assert all(r["seed"] == 0 and r["trajectory"]["schema"] == "geolocate.trajectory/1" for r in recs)


def test_ablation_cli_writes_one_table_for_three_tool_sets(osv_dir, tmp_path, capsys):
    rc = main(
        [
            "ablate",
            "--dataset",
            "osv5m",
            "--data",
            str(osv_dir),
            "--limit",
            "2",
            "--out",
            str(tmp_path),
            "--tools",
            "all",
            "-ocr",
            "clues,gazetteer",
        ]
    )
    assert rc == 0
    with open(tmp_path / "ablation.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["all", "all -ocr", "clues,gazetteer"]
    assert all(r["n"] == "2" for r in rows)
    assert (
        float(rows[0]["ocr_calls"]) == 1.0
        and "ocr_calls" not in rows[1]
        or rows[1]["ocr_calls"] in ("", None)
    )
    assert "acc@25km" in (tmp_path / "ablation.md").read_text()
    assert main(["ablate", "--dataset", "osv5m", "--data", str(osv_dir), "--tools", "-teleport"]) == 2
    assert "valid tools" in capsys.readouterr().err


def test_eval_resume_skips_corrupt_lines_and_refuses_other_settings(tmp_path, osv_dir, capsys, caplog):
    from geolocate.agent.cli import main

    out = tmp_path / "ev"
    base = ["eval", "--dataset", "osv5m", "--data", str(osv_dir), "--limit", "2", "--out", str(out)]
    assert main([*base, "--tools", "ocr,clues"]) == 0
    jl = out / "trajectories.jsonl"
    lines = jl.read_text().splitlines()
    assert json.loads(lines[0])["header"]["tools"] == "ocr,clues,-exif" and len(lines) == 3
    jl.write_text("\n".join([lines[0], lines[1], "{}", "null", lines[2][:40]]) + "\n")
    capsys.readouterr()
    assert main([*base, "--tools", "ocr,clues"]) == 0  # resumes: the corrupt lines are named and skipped
    assert "line 3 (byte offset" in caplog.text and "line 4 (byte offset" in caplog.text
    assert len([x for x in jl.read_text().splitlines() if x.strip()]) == 3  # header + 2 records
    assert main([*base, "--tools", "all"]) == 2
    err = capsys.readouterr().err
    assert "holds results of another run" in err and "tools was 'ocr,clues,-exif'" in err
    assert main([*base, "--tools", "all", "--force"]) == 0
    assert (out / "trajectories.jsonl.bak").exists()
    assert json.loads(jl.read_text().splitlines()[0])["header"]["tools"] == "all,-exif"


def test_leave_one_out_study_with_paired_tests_checked_by_hand(tmp_path, osv_dir, capsys):
    """A leave-one-out study of the heuristic planner on OSV-5M photos; the marginal contribution of
    ocr is recomputed here with scipy from the two arms' records."""
    import numpy as np
    from scipy.stats import binomtest, bootstrap, permutation_test

    from geolocate.agent.cli import main
    from geolocate.evals.metrics import geoscore
    from geolocate.evals.runner import read_jsonl

    out = tmp_path / "study"
    args = ["ablate", "--dataset", "osv5m", "--data", str(osv_dir), "--limit", "10", "--out", str(out)]
    assert main([*args, "--base", "ocr,clues,gazetteer", "--leave-one-out"]) == 0
    printed = capsys.readouterr().out
    assert "Marginal contribution of each tool (leave-one-out, paired)" in printed
    for f in (
        "ablation.md",
        "ablation.csv",
        "ablation.tex",
        "marginal.csv",
        "error_cdf.png",
        "accuracy.png",
        "marginal.png",
    ):
        assert (out / f).is_file(), f
    assert r"\toprule" in (out / "ablation.tex").read_text()
    base, no_ocr = read_jsonl(out / "base.jsonl"), read_jsonl(out / "minus_ocr.jsonl")
    by_id = {r["id"]: r["error_km"] for r in no_ocr}
    ids = sorted(set(r["id"] for r in base) & set(by_id))
    ga = geoscore(np.array([next(r["error_km"] for r in base if r["id"] == i) for i in ids]))
    gb = geoscore(np.array([by_id[i] for i in ids]))
    diff = lambda u, v, axis=-1: np.mean(u - v, axis=axis)  # noqa: E731
    rng = np.random.default_rng(0)
    p = permutation_test(
        (ga, gb), diff, permutation_type="samples", vectorized=True, n_resamples=9999, random_state=rng
    ).pvalue
    ci = bootstrap((ga, gb), diff, paired=True, vectorized=True, n_resamples=4000, method="percentile",
                   random_state=np.random.default_rng(0)).confidence_interval  # fmt: skip
    row = next(r for r in csv.DictReader(open(out / "marginal.csv")) if r["tool"] == "ocr")
    assert float(row["geoscore"]) == pytest.approx(float(np.mean(ga - gb)))
    assert (
        float(row["geoscore_p"]) == pytest.approx(p) if np.any(ga != gb) else float(row["geoscore_p"]) == 1.0
    )
    if np.any(ga != gb):
        assert (float(row["geoscore_lo"]), float(row["geoscore_hi"])) == pytest.approx((ci.low, ci.high))
    ea = np.array([next(r["error_km"] for r in base if r["id"] == i) for i in ids])
    eb = np.array([by_id[i] for i in ids])
    b, c = int(np.sum((ea <= 2500) & (eb > 2500))), int(np.sum((ea > 2500) & (eb <= 2500)))
    want = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert float(row["acc@2500km_p"]) == pytest.approx(want)


def test_two_runs_made_separately_join_into_one_table(tmp_path, osv_dir, capsys):
    from geolocate.agent.cli import main

    common = ["--dataset", "osv5m", "--data", str(osv_dir), "--limit", "6"]
    assert main(["eval", *common, "--tools", "all", "--out", str(tmp_path / "monday")]) == 0
    assert main(["eval", *common, "--tools", "ocr", "--out", str(tmp_path / "friday")]) == 0
    capsys.readouterr()
    joined = tmp_path / "joined"
    assert (
        main(
            ["ablate", "--compare", str(tmp_path / "monday"), str(tmp_path / "friday"), "--out", str(joined)]
        )
        == 0
    )
    table = (joined / "ablation.md").read_text()
    assert (
        "| monday | `heuristic: all,-exif` | 6 |" in table
        and "| friday | `heuristic: ocr,-exif` | 6 |" in table
    )
    assert (joined / "error_cdf.png").is_file() and (joined / "accuracy.png").is_file()
    assert main(["ablate", "--compare", str(tmp_path / "nothing"), "--out", str(joined)]) == 2
    assert "no results" in capsys.readouterr().err


def test_ablate_help_and_arm_errors(capsys):
    from geolocate.agent.cli import main

    assert main(["ablate", "-h"]) == 0
    assert "--leave-one-out" in capsys.readouterr().out
    assert main(["ablate", "--dataset", "osv5m", "--data", "x", "--leave-one-out"]) == 2
    assert "need --base" in capsys.readouterr().err
