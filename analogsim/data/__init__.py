"""Files shipped inside the package: presets, sweep specs and the 8x8 digits.

They are found with :func:`importlib.resources.files`, so a wheel installed anywhere finds
them exactly as a checkout does. The layout below ``analogsim/data/``:

``models/hardware/<preset>.toml``
    TOML copies of the hardware presets, generated from :mod:`analogsim.hardware.presets`
    (``python -m analogsim.hardware.toml_io analogsim/data/models/hardware``).
``models/networks/<name>.toml``
    the network presets (``--model NAME``): a new file here is a new preset.
``experiments/**/<name>.toml``
    the shipped sweep specs: ``analogsim sweep`` takes a file, or a shipped spec by its path
    below ``experiments/`` (``rules_vs_read_noise``, ``fashion/rules_tuned``), also written
    as in a checkout (``experiments/fashion/rules_tuned.toml``) — see :func:`find_spec`.
``datasets/digits.npz``
    the 8x8 digits (source, licence and checksum in ``datasets/README.md``).

This folder is the only copy. In a checkout the top-level ``models`` and ``experiments`` are
symbolic links to ``analogsim/data/models`` and ``analogsim/data/experiments`` (a test
checks), and every ``*.toml``, ``*.npz`` and ``*.md`` below here goes into the wheel by the
package-data patterns of pyproject.toml, without being listed one by one.

Like :mod:`analogsim.seeding`, this module imports nothing of the package.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = ["DATA_DIR", "HARDWARE_DIR", "NETWORKS_DIR", "EXPERIMENTS_DIR", "DIGITS_FILE",
           "shipped_specs", "find_spec"]


def _data_dir() -> Path:
    root = files(__name__)
    if not isinstance(root, Path):  # e.g. a zipped package: its files have no path
        raise ImportError(f"analogsim's data files are not on the file system ({root!s}); "
                          "allowed: analogsim installed from a wheel or a checkout")
    return root


#: ``analogsim/data`` of the imported package.
DATA_DIR = _data_dir()
#: TOML copies of the hardware presets.
HARDWARE_DIR = DATA_DIR / "models" / "hardware"
#: The network presets (``--model NAME``).
NETWORKS_DIR = DATA_DIR / "models" / "networks"
#: The shipped sweep specs (subfolders hold the longer ones).
EXPERIMENTS_DIR = DATA_DIR / "experiments"
#: The 8x8 digits (:func:`analogsim.experiments.data.load_digits`).
DIGITS_FILE = DATA_DIR / "datasets" / "digits.npz"

#: How a shipped spec may also be named: its path in a checkout.
_SPEC_PREFIX = "experiments/"


def shipped_specs() -> dict[str, Path]:
    """``{name: path}`` of the shipped sweep specs, sorted by name.

    A name is the spec's path below ``experiments/`` without ``.toml``: ``rules_vs_read_noise``,
    ``fashion/rules_tuned``.
    """
    return {p.relative_to(EXPERIMENTS_DIR).with_suffix("").as_posix(): p
            for p in sorted(EXPERIMENTS_DIR.rglob("*.toml"))}


def find_spec(spec: str | os.PathLike[str]) -> Path:
    """The sweep spec file that ``spec`` names.

    An existing file is itself; otherwise ``spec`` may name a shipped spec, as
    ``fashion/rules_tuned``, ``fashion/rules_tuned.toml`` or, as in a checkout,
    ``experiments/fashion/rules_tuned.toml`` — so the commands in the docs work outside the
    repository too.

    Raises
    ------
    ValueError
        Neither a file nor a shipped spec; the message lists the shipped specs.
    """
    text = os.fspath(spec)
    # os.path.isfile: False (not OSError) for names the OS rejects, e.g. too long.
    if os.path.isfile(text):
        return Path(text)
    name = text.replace(os.sep, "/").removeprefix("./").removeprefix(_SPEC_PREFIX)
    specs = shipped_specs()
    found = specs.get(name.removesuffix(".toml"))
    if found is None:
        raise ValueError(f"spec = {text!r} is invalid: no such file and no shipped spec of that "
                         "name; allowed: an existing TOML file or a shipped spec: "
                         + ", ".join(specs))
    return found
