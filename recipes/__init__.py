"""The shipped paper recipes (``*.toml``), installed as the package ``grownet.recipes``.

This file only makes the folder a package, so the editable install can map it; see the
``[tool.setuptools]`` comment in pyproject.toml and ``grownet.shipped``.
"""
