"""An example geolocate plug-in: :class:`~.tools.SkyTool` and :class:`~.planner.SkyFirstPlanner`.

Installed (``pip install examples/plugin``), they are found through the entry points in its
``pyproject.toml``: ``geolocate locate photo.jpg --policy sky_first --tools all,sky``. Not installed,
they can still be named as ``module:attr`` when the package is importable.
"""
