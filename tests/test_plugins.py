"""Extension points by ``module:attr``, in process: a planner, a tool, a reward and a dataset loader
that live outside the project (here, in this test module) are accepted wherever a name is."""

from __future__ import annotations

import pytest

from geolocate.agent.policies import make_policy
from geolocate.evals.datasets import Dataset, Sample, load_dataset
from geolocate.policy_training.rewards import REWARDS, reward_functions
from geolocate.tools.errors import UnknownNameError, UnknownToolError
from geolocate.tools.registry import ToolSet
from tests.conftest import OSV


def always_half(prompts, completions, trajectory, **kwargs):
    """A custom reward: 0.5 for every episode."""
    return [0.5 for _ in trajectory]


def two_photos(**kwargs) -> Dataset:
    """A custom dataset layout: the first two OSV-5M sample photos, whatever the arguments."""
    ids = ["1105240373293389", "2872700852992867"]
    return Dataset("two", [Sample(i, OSV / "images" / f"{i}.jpg", 0.0, 0.0, {}) for i in ids])


def test_policy_tool_reward_and_dataset_by_module_attr():
    p = make_policy("geolocate_example_plugin.planner:SkyFirstPlanner") if _plugin_importable() else None
    if p is not None:
        assert p.name == "sky_first"
    tools = ToolSet.parse_spec("ocr,tests.test_episode:SlowTool")
    assert tools.names == ["ocr", "slow"]
    funcs, weights = reward_functions({"tests.test_plugins:always_half": 0.25})
    assert funcs[-1] is always_half and weights[-1] == 0.25 and len(funcs) == len(REWARDS) + 1
    ds = load_dataset("tests.test_plugins:two_photos")
    assert [s.id for s in ds] == ["1105240373293389", "2872700852992867"]


def _plugin_importable() -> bool:
    import importlib.util
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "plugin"))
    return importlib.util.find_spec("geolocate_example_plugin") is not None


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid: heuristic"):
        make_policy("oracle")
    with pytest.raises(UnknownToolError, match="valid tools: exif"):
        ToolSet.parse_spec("all,teleport")
    with pytest.raises(UnknownNameError, match="geo_r_distance"):
        reward_functions({"nonsense": 1.0})
    with pytest.raises(UnknownNameError, match="osv5m"):
        load_dataset("nonsense")
    with pytest.raises(UnknownNameError, match="ModuleNotFoundError"):
        make_policy("no_such_module:Planner")
