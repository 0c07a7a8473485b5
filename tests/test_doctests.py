"""Every docstring example in the installed ``geolocate.*`` modules runs (doctests).

They are collected from the installed package rather than with ``--doctest-modules`` over the
folders, which would import each module a second time under its bare folder name (``agent.cli``).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

# Modules whose import needs an optional extra that the test set-up may lack.
_OPTIONAL = {
    "geolocate.policy_training.train",
    "geolocate.policy_training.rollout",
    "geolocate.policy_training.config",
}


WINGS = ("agent", "tools", "prompts", "evals", "policy_training")


def _modules() -> list[str]:
    names = []
    for wing in WINGS:
        pkg = importlib.import_module(f"geolocate.{wing}")
        names.append(pkg.__name__)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, f"{pkg.__name__}.")]
    return sorted(names)


def test_the_wings_are_sub_packages_of_geolocate_only():
    for wing in WINGS:
        mod = importlib.import_module(f"geolocate.{wing}")
        assert mod.__name__ == f"geolocate.{wing}"
    assert len(_modules()) > 30


@pytest.mark.parametrize("name", _modules())
def test_doctests(name):
    try:
        mod = importlib.import_module(name)
    except ImportError as e:  # pragma: no cover - an extra is missing
        if name in _OPTIONAL:
            pytest.skip(f"{name}: {e}")
        raise
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(mod, name, globs=dict(vars(mod))):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
