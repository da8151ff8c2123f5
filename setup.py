"""Package discovery for turnwise.

The four top-level folders `envs/`, `agents/`, `trainers/` and `sandboxes/` are installed as
subpackages of `turnwise` (DESIGN.md). Static `pyproject.toml` cannot discover packages under a
remapped folder, so they are found here; everything else lives in pyproject.toml.
"""

from setuptools import find_packages, setup

MAPPED = ("envs", "agents", "trainers", "sandboxes")

package_dir = {"turnwise": "turnwise"}
packages = find_packages(include=["turnwise", "turnwise.*"])
for folder in MAPPED:
    package_dir[f"turnwise.{folder}"] = folder
    packages.append(f"turnwise.{folder}")
    packages += [f"turnwise.{folder}.{sub}" for sub in find_packages(where=folder)]

setup(package_dir=package_dir, packages=packages)
