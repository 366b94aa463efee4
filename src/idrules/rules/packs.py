"""Where the shipped packs live: in a wheel (``idrules/packs``) or a checkout (``rules/``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = Path(__file__).resolve().parent / "defaults.yaml"


@cache
def packs_dir() -> Path:
    """The folder of shipped packs: inside the installed package, else the checkout's ``rules/``."""
    installed = _PACKAGE_DIR / "packs"
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent.parent / "rules"


def pack_names() -> list[str]:
    """Names of the shipped packs, sorted."""
    folder = packs_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def pack_path(name: str) -> Path | None:
    """The file of the shipped pack ``name``, or None when there is no such pack."""
    if name not in pack_names():
        return None
    return packs_dir() / f"{name}.yaml"
