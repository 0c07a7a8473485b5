"""Packaging: the project installs as ``geolocate.*`` only, beside PyPI's ``agent``, ``tools``, ``evals``
and ``prompts`` packages, and runs from outside the repository; the example plug-in package works
through entry points and through ``module:attr``, with no change to the project's own files.

The venv sees this machine's installed dependencies through a plain path line (not the editable
install's finder, which would hide a packaging mistake behind the checkout). PyPI's four packages are
fetched with pip (``--no-deps``): the test is skipped when no package index is reachable.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import OSV, REPO

SHADOWS = ["agent", "tools", "evals", "prompts"]


def _run(cmd, cwd, **kw):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    env = root / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env)], cwd=root)
    py = env / "bin" / "python"
    purelib = Path(
        _run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root
        ).stdout.strip()
    )
    # The host's packages (pip, setuptools, the dependencies) as a plain path: .pth files there are not run.
    (purelib / "host.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = [
        str(py),
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--disable-pip-version-check",
    ]
    r = subprocess.run(
        [*pip, "--target", str(root / "pypi"), *SHADOWS], capture_output=True, text=True, timeout=600
    )
    if r.returncode != 0:
        pytest.skip(f"PyPI not reachable for {SHADOWS}: {r.stderr.strip().splitlines()[-1:]}")
    for name in os.listdir(root / "pypi"):  # into the venv's own site-packages, beside ours
        os.replace(root / "pypi" / name, purelib / name)
    _run([*pip, str(REPO)], cwd=root)
    _run([*pip, str(REPO / "examples" / "plugin")], cwd=root)
    for name in SHADOWS:
        assert any(purelib.glob(f"{name}-*.dist-info")), f"PyPI's {name} is not installed"
    assert (purelib / "geolocate" / "agent" / "cli.py").is_file()
    return env


def test_installed_beside_pypis_agent_tools_evals_prompts(venv, tmp_path):
    py, exe = venv / "bin" / "python", venv / "bin" / "geolocate"
    probe = "import agent, tools, geolocate.agent.cli as c; print(agent.__file__, c.__file__)"
    out = _run([str(py), "-c", probe], cwd=tmp_path).stdout.split()
    assert out[0].endswith("site-packages/agent.py")  # PyPI's agent is untouched
    assert out[1].startswith(str(venv)) and str(REPO) not in out[1]  # ours is the installed copy
    r = _run([str(exe), "locate", str(REPO / "examples" / "photos" / "2872700852992867.jpg")], cwd=tmp_path)
    assert "China" in r.stdout and "OpenStreetMap:" in r.stdout


def test_plugin_through_entry_points_and_module_attr(venv, tmp_path):
    exe = str(venv / "bin" / "geolocate")
    photo = str(REPO / "examples" / "photos" / "2872700852992867.jpg")
    for policy, tool in [
        ("sky_first", "sky"),
        ("geolocate_example_plugin.planner:SkyFirstPlanner", "geolocate_example_plugin.tools:SkyTool"),
    ]:
        out = tmp_path / "t.json"
        _run(
            [
                exe,
                "locate",
                photo,
                "--no-exif",
                "--quiet",
                "--policy",
                policy,
                "--tools",
                f"all,{tool}",
                "--json",
                str(out),
            ],
            cwd=tmp_path,
        )
        t = json.loads(out.read_text())
        assert t["policy"] == "sky_first" and t["evidence"][0]["tool"] == "sky"
        assert 0 <= t["evidence"][0]["output"]["sky_fraction"] <= 1
        assert t["chain"]["country"]["code"] == "CN"  # the heuristic planner took over after the sky
    common = ["--dataset", "osv5m", "--data", str(OSV), "--limit", "2", "--policy", "sky_first"]
    r = _run([exe, "eval", *common, "--tools", "all,sky", "--out", str(tmp_path / "ev")], cwd=tmp_path)
    assert "sky_first (all,sky)" in r.stdout
    rows = [
        json.loads(x) for x in (tmp_path / "ev" / "trajectories.jsonl").read_text().splitlines() if x.strip()
    ]
    assert any(e["tool"] == "sky" for row in rows for e in row.get("trajectory", row).get("evidence", []))
    r = _run(
        [exe, "ablate", *common, "--out", str(tmp_path / "ab"), "--tools", "all,sky", "all,sky,-ocr"],
        cwd=tmp_path,
    )
    assert "all,sky,-ocr" in r.stdout
