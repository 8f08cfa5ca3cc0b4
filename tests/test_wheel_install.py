"""The packages as users and images install them: wheels (not editable) put into a short folder
outside the repository, run from a folder that is not the repository. `photosplat up` and every
service start from there; nothing may find its files relative to the source tree."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import pytest
from photosplat_testkit.harness import ServiceProcesses, free_port

PACKAGES = (
    "libs", "services/ingest", "services/status", "services/viewer", "services/colmap", "services/trainer",
    "clients/python", ".",
)
WHEELS = ("photosplat", "photosplat_libs", "photosplat_ingest", "photosplat_status", "photosplat_viewer",
          "photosplat_colmap", "photosplat_trainer", "photosplat_client")


@pytest.fixture(scope="module")
def installed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, str]]:
    """(python command, environment): our packages from their wheels only; third-party ones from
    the test environment's site-packages, read without its .pth files (they hold the editable
    installs of our packages)."""
    root = request.config.rootpath
    wheels = tmp_path_factory.mktemp("wheels")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels)]
    subprocess.run([*build, *(str(root / p) for p in PACKAGES)], check=True, capture_output=True, timeout=300)
    names = sorted(w.name.split("-")[0] for w in wheels.glob("*.whl"))
    assert names == sorted(WHEELS), names
    site = Path("/tmp") / f"ps{time.monotonic_ns() % 10**6}"  # a short path, as `pip install --target` in an image
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*install, *map(str, wheels.glob("*.whl"))], check=True, capture_output=True, timeout=300)
    request.addfinalizer(lambda: subprocess.run(["rm", "-rf", str(site)], check=False))
    env = {"PYTHONPATH": f"{site}:{sysconfig.get_paths()['purelib']}", "PYTHONUNBUFFERED": "1"}
    return [sys.executable, "-S"], env


def test_the_installed_packages_come_from_the_wheels(installed: tuple[list[str], dict[str, str]], tmp_path: Path) -> None:
    python, env = installed
    code = (
        "import photosplat_libs, photosplat_viewer, photosplat_client.cli, photosplat.cli;"
        "print(photosplat_libs.__file__, photosplat_viewer.__file__, photosplat_client.cli.__file__)"
    )
    out = subprocess.run([*python, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
    site = env["PYTHONPATH"].split(":")[0]
    assert all(path.startswith(site + "/") for path in out.stdout.split()), out.stdout


def test_photosplat_up_runs_from_the_installed_wheels(installed: tuple[list[str], dict[str, str]], tmp_path: Path) -> None:
    python, env = installed
    port = free_port()
    proc = subprocess.Popen(
        [*python, "-m", "photosplat", "up", "--port", str(port), "--data", str(tmp_path / "data")],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        pages = [httpx.get(f"{base}{path}", timeout=10) for path in ("/", "/static/app/site.css", "/recon/jobs")]
        assert [p.status_code for p in pages] == [200, 200, 401]  # templates and static files from the wheel
    finally:
        proc.terminate()
        proc.wait(20)


async def test_every_service_starts_from_the_installed_wheels(
    installed: tuple[list[str], dict[str, str]], pg_url: str, amqp_url: str, bus_namespace: str, s3_url: str, tmp_path: Path
) -> None:
    python, env = installed
    (tmp_path / "logs").mkdir()
    settings = {"BUS_URL": amqp_url, "BUS_NAMESPACE": bus_namespace, "DATABASE_URL": pg_url, "STORE_URL": s3_url,
                "HOST": "127.0.0.1", "WORK_DIR": str(tmp_path / "work"), "DEVICE": "cpu"}
    procs = ServiceProcesses(settings, tmp_path / "logs", python=python, cwd=tmp_path)
    try:
        for name in ("ingest", "status", "viewer"):
            port = free_port()
            procs.start(name, {**env, f"PHOTOSPLAT_{name.upper()}_PORT": str(port)})
            await procs.wait_http(name, f"http://127.0.0.1:{port}", timeout=90)
        for name in ("colmap", "trainer"):
            procs.start(name, env)
            await procs.wait_log(name, f"service {name} started", timeout=90)
    finally:
        await procs.stop()
