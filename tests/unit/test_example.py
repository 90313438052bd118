"""The component as a library: hapx built into a wheel, installed into a fresh virtualenv (its
dependencies resolved by pip from the wheel's metadata), and examples/with-own-network's own
tests run there, outside this checkout, so only the installed package can answer its imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv

from tests.conftest import PROJECT

EXAMPLE = PROJECT / "examples" / "with-own-network"
# What the wheel is built from (pyproject.toml's packages), copied out of the checkout so that
# setuptools' build/ leftovers (it reuses build/lib) can never slip a stale file into the wheel.
PACKAGE_SOURCES = ("pyproject.toml", "requirements.txt", "hapx", "components", "templates", "agents")
PIP_TIMEOUT_S = 900  # a cold pip cache downloads pulumi, grpcio and the providers' SDKs


def test_the_example_passes_its_tests_from_an_installed_wheel(tmp_path):
    src, wheels = tmp_path / "src", tmp_path / "wheels"
    src.mkdir()
    for name in PACKAGE_SOURCES:
        if (PROJECT / name).is_dir():
            shutil.copytree(PROJECT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(PROJECT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(src)],
                   check=True, timeout=PIP_TIMEOUT_S)
    wheel = next(wheels.glob("hapx-*.whl"))
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = str(env / "bin" / "python")
    pins = [line for line in (PROJECT / "requirements-dev.txt").read_text().splitlines() if line.startswith("pytest==")]
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel), *pins], check=True, timeout=PIP_TIMEOUT_S)
    work = tmp_path / "example"
    shutil.copytree(EXAMPLE, work)
    res = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=work, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 passed" in res.stdout, res.stdout
    where = subprocess.run([python, "-c", "import hapx.components; print(hapx.components.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True).stdout
    assert str(env) in where and str(PROJECT) not in where, where
