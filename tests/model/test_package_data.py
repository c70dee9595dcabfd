"""The paper's model files ship inside the package, as one copy with the ``models/`` catalogue."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import bayesmix as bm
from bayesmix.model import catalogue
from tests.support.paths import ROOT

PACKAGED = ROOT / "bayesmix" / "model" / "bundled"

# name -> (K, L) as the files set them
MODELS = {
    "conventional": (1, 1),
    "fig1": (2, 1),
    "fig3": (2, 1),
    "hsb_1": (1, 1),
    "hsb_1b": (1, 1),
    "hsb_1c": (1, 1),
    "hsb_A": (3, 1),
    "hsb_B": (3, 1),
    "hsb_C": (3, 2),
}


def test_models_folder_is_the_packaged_folder() -> None:
    catalogue_dir = ROOT / "models"
    assert catalogue_dir.is_symlink()
    assert catalogue_dir.readlink() == Path(
        "bayesmix/model/bundled"
    )  # relative: works in any clone
    assert catalogue_dir.resolve() == PACKAGED.resolve()
    shown = sorted(p.name for p in catalogue_dir.glob("*.toml"))
    assert shown == sorted(f"{name}.toml" for name in MODELS)


def test_every_bundled_model_loads_by_name() -> None:
    assert bm.model_names() == tuple(sorted(MODELS))
    for name, (classes, between) in MODELS.items():
        path = bm.model_file(name)
        assert path == PACKAGED / f"{name}.toml"
        assert path.read_bytes() == (ROOT / "models" / f"{name}.toml").read_bytes()
        spec = bm.load_spec(path)
        assert (spec.name, spec.classes, spec.between_classes) == (name, classes, between)
    assert bm.model_file("hsb_B.toml") == PACKAGED / "hsb_B.toml"


def test_unknown_model_name_lists_the_bundled_ones() -> None:
    with pytest.raises(bm.SpecError) as info:
        bm.model_file("fig2")
    assert str(info.value) == (
        "no bundled model named 'fig2'; the bundled models are conventional, fig1, fig3, "
        "hsb_1, hsb_1b, hsb_1c, hsb_A, hsb_B, hsb_C."
    )


def test_missing_file_with_a_bundled_name_points_to_the_package_copy(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "fig1.toml"
    with pytest.raises(bm.SpecError) as info:
        bm.load_spec(missing)
    assert str(info.value) == (
        f"model file {str(missing)!r} does not exist; bayesmix ships 'fig1' as "
        f"{str(PACKAGED / 'fig1.toml')!r} (bayesmix.model_file('fig1'))."
    )


def test_model_file_from_a_zipped_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a package imported from a zip file has no file-system paths: model_file extracts a copy
    archive = tmp_path / "bayesmix.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(PACKAGED / "fig3.toml", "bayesmix/model/bundled/fig3.toml")
    with zipfile.ZipFile(archive) as zf:
        monkeypatch.setattr(
            catalogue, "_folder", lambda: zipfile.Path(zf, "bayesmix/model/bundled/")
        )
        assert bm.model_names() == ("fig3",)
        path = bm.model_file("fig3")
        assert isinstance(path, Path)
        assert not path.is_relative_to(tmp_path)
        assert path.read_bytes() == (PACKAGED / "fig3.toml").read_bytes()
        assert bm.load_spec(path).classes == 2


def test_wheel_contains_the_model_files(tmp_path: Path) -> None:
    # build from a copy, so the build leaves nothing in the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "bayesmix", src / "bayesmix", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = tmp_path / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "--quiet", "--wheel-dir", str(dist), str(src)],
        check=True,
        timeout=120,
    )
    (wheel,) = dist.glob("bayesmix-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        packaged = sorted(n for n in names if n.startswith("bayesmix/model/bundled/"))
        assert packaged == sorted(f"bayesmix/model/bundled/{name}.toml" for name in MODELS)
        for member in packaged:
            assert zf.read(member) == (ROOT / "models" / Path(member).name).read_bytes()
        assert {"bayesmix/__main__.py", "bayesmix/data/datasets/hsb.csv"} <= names
        assert not any(n.startswith(("models/", "tests/")) for n in names)


def test_python_m_bayesmix_is_the_command(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bayesmix", "montecarlo", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert run.stdout.startswith("usage: bayesmix montecarlo [-h] --study")
