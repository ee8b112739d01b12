"""An install carries the shipped specs and recipes; an argument names one or the user's file."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grownet.cli import main
from grownet.errors import BadValueError
from grownet.shipped import resolve_recipe, resolve_spec, shipped_names

ROOT = Path(__file__).parents[1]
SPECS = sorted((ROOT / "search").glob("*.toml"))
RECIPES = sorted((ROOT / "recipes").glob("*.toml"))


def test_the_wheel_carries_every_spec_recipe_and_module(tmp_path):
    # Build from a copy, so the build's scratch folders (build/, *.egg-info) never touch the
    # checkout that other test runs read.
    source = tmp_path / "src"
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")
    for folder in ("grownet", "search", "recipes"):
        shutil.copytree(ROOT / folder, source / folder, ignore=junk)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(tmp_path / "dist"), str(source)],
        check=True, env=env, timeout=120, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("grownet-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    assert SPECS and RECIPES
    missing = [f"grownet/specs/{p.name}" for p in SPECS] + [
        f"grownet/recipes/{p.name}" for p in RECIPES
    ]
    # pyproject.toml lists the packages by hand: a new subpackage left off would vanish here.
    missing += [
        p.relative_to(source).as_posix() for p in sorted((source / "grownet").rglob("*.py"))
    ]
    assert [name for name in missing if name not in inside] == []
    assert "grownet/specs/README.md" not in inside  # only the specs themselves


def test_the_shipped_names_are_the_repository_files():
    assert shipped_names("spec") == [p.stem for p in SPECS]
    assert shipped_names("recipe") == [p.stem for p in RECIPES]


def test_a_name_finds_the_shipped_file_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for arg in ("digits", "digits.toml", None):
        path = resolve_spec(arg)
        assert path.is_file() and path.read_text() == (ROOT / "search" / "digits.toml").read_text()
    assert resolve_recipe("dropin_mnist_lenet").read_text() == (
        ROOT / "recipes" / "dropin_mnist_lenet.toml"
    ).read_text()


def test_a_path_always_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits.toml").write_text("# mine\n")
    assert resolve_spec("digits.toml") == Path("digits.toml")
    assert resolve_spec(tmp_path / "digits.toml") == tmp_path / "digits.toml"
    (tmp_path / "digits").mkdir()  # a folder is never a spec: the bare name stays the shipped one
    assert resolve_spec("digits").read_text() != "# mine\n"


@pytest.mark.parametrize(
    ("arg", "match"),
    [
        ("nope", "no shipped search spec is named 'nope'"),
        ("conf/nope.toml", "search spec file conf/nope.toml does not exist;"),
        ("search/digits.toml", r"the shipped one is `grownet search digits`"),
        ("mnist.json", r"mnist.json does not exist \(the shipped one is `grownet search mnist`"),
    ],
)
def test_an_unknown_name_is_one_line_listing_the_shipped(tmp_path, monkeypatch, arg, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadValueError, match=match) as err:
        resolve_spec(arg)
    message = str(err.value)
    assert "\n" not in message and "cifar10, cifar10_resnet, digits" in message
    assert "a path to an existing file is read as your own search spec" in message


def test_the_command_line_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "dropin_mnist", "--summary-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shipped recipes are: " in err and "dropin_mnist_lenet," in err
    assert main(["search", "nope"]) == 2
    assert "shipped search specs are:" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
@pytest.mark.parametrize(("flags", "cpu_wheels"), [([], False), (["CPU=1"], True)])
def test_make_install_offers_cpu_only_torch(tmp_path, flags, cpu_wheels):
    # a dry run (-n) into a venv path that does not exist: nothing is installed
    done = subprocess.run(["make", "-n", "-C", str(ROOT), "install", f"VENV={tmp_path}/v", *flags],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert ("torch torchvision --index-url https://download.pytorch.org/whl/cpu" in done.stdout) \
        == cpu_wheels
    assert "pip install --quiet -e ." in done.stdout
