"""Fresh virtualenvs holding the project's wheel with one extra, and commands run in them.

The wheel is built from a copy of this checkout's packaged files (what setuptools would take
from the repository path), so that nothing is written into the checkout (setuptools' `build/`
would otherwise keep stale modules between builds). Commands run outside the checkout, with no
PYTHONPATH, so that only the virtualenv's own packages can be imported.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What pyproject.toml packages: its metadata files and the four packages it finds.
PACKAGED = ("pyproject.toml", "README.md", "shared", "edge", "cloud", "firmware_sims")
PIP_TIMEOUT_S = 600
COMMAND_TIMEOUT_S = 120
# Variables that would let a command see another environment's packages.
_LEAKY = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")

# Imports every module of the named packages: a module that needs a package the extra does not
# install fails here even when no command reaches it.
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        importlib.import_module(module.name)
    print("imported", name)
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what could leak other packages in, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key not in _LEAKY}
    env.update(extra)
    return env


def run(
    command: Sequence[str | Path],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run `command`; its output, whatever its status (the caller asserts)."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def checked(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that must have succeeded; its whole output if it did not."""
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def copy_packaged(files: Sequence[str], source: Path, target: Path) -> Path:
    """`files` (files or folders) of `source` copied into `target`, without bytecode."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    target.mkdir(parents=True, exist_ok=True)
    for name in files:
        origin = source / name
        if origin.is_dir():
            shutil.copytree(origin, target / name, ignore=ignore)
        else:
            shutil.copy2(origin, target / name)
    return target


def build_wheel(context: Path, out: Path) -> Path:
    """`pip wheel --no-deps` of the project in `context`; the wheel's path."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps"]
    checked(run([*pip, "--wheel-dir", out, context], cwd=out.parent, timeout=PIP_TIMEOUT_S))
    (wheel,) = out.glob("tollgate-*.whl")
    return wheel


def venv_with(wheel: Path, extra: str, where: Path) -> Path:
    """A new virtualenv with `wheel[extra]` installed from it; the venv's bin folder."""
    checked(run([sys.executable, "-m", "venv", where], cwd=where.parent))
    bin_dir = where / "bin"
    pip: list[str | Path] = [bin_dir / "python", "-m", "pip", "--disable-pip-version-check"]
    pip += ["install", "--quiet"]
    checked(run([*pip, f"{wheel}[{extra}]"], cwd=where.parent, timeout=PIP_TIMEOUT_S))
    return bin_dir


def import_every_module(bin_dir: Path, packages: Sequence[str], *, cwd: Path) -> str:
    """Import every module of `packages` in the venv (no system time zones either)."""
    command: list[str | Path] = [bin_dir / "python", "-c", IMPORT_EVERY_MODULE, *packages]
    return checked(run(command, cwd=cwd, env=clean_env(PYTHONTZPATH="")))
