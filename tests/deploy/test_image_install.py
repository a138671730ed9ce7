"""The collector image's install, replayed without Docker: the wheel built from exactly what the
Dockerfile copies, installed with the extra it names into a fresh virtualenv, then its build
checks, `tollgate-cloud migrate`, a catalog with no system time zones, its CMD and HEALTHCHECK
against the machine's PostgreSQL, as the image would run them."""

import json
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.install.venvs import REPO, checked, clean_env, copy_packaged, run

pytestmark = pytest.mark.slow
DOCKERFILE = REPO / "deploy" / "cloud" / "Dockerfile"
CATALOG = REPO / "firmware_sims" / "demo_catalog.toml"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuations joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.strip().partition(" ") for line in joined.splitlines())
        if word
    ]


def _build_context() -> list[str]:
    """What the build stage copies from the repository (COPY without --from)."""
    sources: list[str] = []
    for instruction, arguments in _instructions():
        if instruction == "COPY" and not arguments.startswith("--from"):
            sources += shlex.split(arguments)[:-1]
    return sources


def _runs_by_stage() -> list[list[str]]:
    """The RUN scripts of each stage (FROM to FROM), in order."""
    stages: list[list[str]] = []
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            stages.append([])
        elif instruction == "RUN":
            stages[-1].append(arguments)
    return stages


def _replayable(script: str, wheels: Path) -> str:
    """A RUN script for this machine: /wheels in a scratch folder, pip's cache allowed (quick),
    and no system user created (the test must not change the machine)."""
    script = script.replace("/wheels", str(wheels)).replace(" --no-cache-dir", "")
    return re.sub(r"useradd [^;]*", ":", script)


def _exec_form(instruction: str) -> list[str]:
    """The last `INSTRUCTION [...]` in exec form (for HEALTHCHECK, the CMD after its options)."""
    (arguments,) = [args for word, args in _instructions() if word == instruction][-1:]
    form: list[str] = json.loads(arguments[arguments.index("[") :])
    return form


def test_the_dockerfile_copies_the_collector_and_installs_the_cloud_extra() -> None:
    assert _build_context() == ["pyproject.toml", "README.md", "shared", "cloud"]
    build, final = _runs_by_stage()
    assert build == ["pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ."]
    system, install = final
    assert "libpango-1.0-0 libpangoft2-1.0-0" in system  # WeasyPrint's (invoice PDFs)
    assert 'pip install --no-cache-dir "${wheel}[cloud]";' in install
    assert "tollgate-cloud --help > /dev/null;" in install
    assert 'python -c "from cloud.invoices.pdf import invoice_pdf";' in install


def test_the_image_install_migrates_bills_in_local_time_serves_and_is_healthy(
    tmp_path: Path, postgres_url: str
) -> None:
    context = copy_packaged(_build_context(), REPO, tmp_path / "src")
    wheels = tmp_path / "wheels"
    checked(run([sys.executable, "-m", "venv", tmp_path / "venv"], cwd=tmp_path))
    # As in the image: its Python first on PATH, the database from TOLLGATE_DB, and no system
    # zone database (the slim base has only part of one).
    path = f"{tmp_path / 'venv' / 'bin'}:/usr/bin:/bin"
    env = clean_env(PATH=path, TOLLGATE_DB=postgres_url, PYTHONTZPATH="")
    # The apt step is not replayed (the test must not change the machine): `make test`
    # installs the same Pango libraries here.
    (build,), (_system, install) = _runs_by_stage()
    checked(run(["sh", "-c", _replayable(build, wheels)], cwd=context, env=env))
    checked(run(["sh", "-c", _replayable(install, wheels)], cwd=tmp_path, env=env))

    migrate = checked(run(["tollgate-cloud", "migrate"], cwd=tmp_path, env=env))
    assert "database at revision" in migrate
    checked(run(["tollgate-cloud", "catalog", "load", CATALOG], cwd=tmp_path, env=env))

    port = _free_port()
    serve = _exec_form("CMD")
    assert serve == ["tollgate-cloud", "serve", "--host", "0.0.0.0", "--port", "8000"]
    serve[serve.index("--host") + 1], serve[serve.index("--port") + 1] = "127.0.0.1", str(port)
    health = [part.replace(":8000/", f":{port}/") for part in _exec_form("HEALTHCHECK")]
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen(serve, cwd=tmp_path, env=env, stdout=output, stderr=output)
    try:
        assert _healthy_within(health, server, cwd=tmp_path, env=env), log.read_text()
    finally:
        server.terminate()
        server.wait(timeout=15)


def _healthy_within(
    health: list[str], server: "subprocess.Popen[bytes]", *, cwd: Path, env: dict[str, str]
) -> bool:
    """Run the HEALTHCHECK until it passes, as Docker would; False if the server exits."""
    for _ in range(150):
        if server.poll() is not None:
            return False
        if run(health, cwd=cwd, env=env).returncode == 0:
            return True
    return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
