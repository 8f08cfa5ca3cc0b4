"""deploy/docker: what the Dockerfiles promise, read from the files (no image is built here): pinned
bases, installs constrained by requirements.lock, and a CUDA trainer image whose gsplat kernels are
compiled at build time for the GPUs we name, against the torch the lock pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "deploy" / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
LOCK = ROOT / "requirements.lock"
CUDA_CONSTRAINTS = DOCKER / "trainer-cuda.constraints"
PINNED_IMAGE = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


def _pins(text: str) -> dict[str, str]:
    """name (normalised) -> version of every ``name==version`` line."""
    pins = {}
    for line in text.splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _stages(dockerfile: str) -> list[str]:
    return re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]


def test_there_is_an_image_per_service_and_a_cuda_trainer() -> None:
    names = {p.name.removesuffix(".Dockerfile") for p in DOCKERFILES}
    assert names == {"ingest", "status", "viewer", "colmap", "colmap-cuda", "trainer", "trainer-cuda"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_base_image_is_pinned_by_tag_and_digest(path: Path) -> None:
    text = path.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))
    bases = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert bases
    for base in bases:
        if base.startswith("${"):
            base = args[base.strip("${}")]
        elif not PINNED_IMAGE.match(base):
            continue  # a stage of this file (FROM build)
        assert PINNED_IMAGE.match(base), base


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_install_is_constrained_by_the_lock(path: Path) -> None:
    text = path.read_text().replace("\\\n", " ")
    installs = re.findall(r"pip (?:install|wheel) [^\n&]*", text)
    assert installs
    for command in installs:
        # The one exception names its exact version from the lock: the CPU build of torch.
        assert " -c /src/" in command or "$(grep '^torch==' /src/requirements.lock)" in command, command
    assert "COPY requirements.lock" in text


def test_the_cuda_constraints_agree_with_the_lock_and_the_trainer() -> None:
    lock, cuda = _pins(LOCK.read_text()), _pins(CUDA_CONSTRAINTS.read_text())
    # The same torch release, as its CUDA build (the lock has the CPU build, X+cpu).
    assert lock["torch"].removesuffix("+cpu") == cuda["torch"]
    # Nothing else pinned twice, so no pin can contradict the lock.
    assert set(cuda) & set(lock) == {"torch"}
    trainer = tomllib.loads((ROOT / "services" / "trainer" / "pyproject.toml").read_text())
    assert trainer["project"]["optional-dependencies"]["cuda"] == [f"gsplat=={cuda['gsplat']}"]


def test_the_cuda_image_compiles_gsplat_at_build_for_the_named_gpus() -> None:
    text = (DOCKER / "trainer-cuda.Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))
    build, runtime = _stages(text)
    assert build.startswith("${CUDA_DEVEL_IMAGE} AS build")
    assert re.match(r"nvidia/cuda:13\.0\.\d+-devel-ubuntu24\.04@", args["CUDA_DEVEL_IMAGE"])
    # PyTorch's CUDA build from PyPI is built for the same CUDA major release as nvcc here.
    toolkit = _pins(CUDA_CONSTRAINTS.read_text())["cuda-toolkit"]
    assert toolkit.split(".")[:2] == ["13", "0"]
    # A100, A10 / RTX 30xx, L4 / RTX 40xx, H100 / H200.
    assert 'ARG TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0"' in build
    wheel = re.compile(r'TORCH_CUDA_ARCH_LIST="\$\{TORCH_CUDA_ARCH_LIST\}".*pip wheel .*--no-binary gsplat')
    assert wheel.search(build.replace("\\\n", " "))
    assert '"/src/services/trainer[cuda]"' in build
    # The runtime stage: no toolkit, the venv with the built extension, a check that it is there.
    assert runtime.startswith("${CUDA_BASE_IMAGE}")
    assert re.match(r"nvidia/cuda:13\.0\.\d+-base-ubuntu24\.04@", args["CUDA_BASE_IMAGE"])
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert "find_spec('gsplat.csrc')" in runtime
    assert "nvcc" not in runtime and "devel" not in runtime
    assert 'CMD ["python", "-m", "photosplat_trainer"]' in runtime


def test_the_cuda_colmap_image_replaces_pycolmap_by_its_cuda_build_at_the_locked_version() -> None:
    text = (DOCKER / "colmap-cuda.Dockerfile").read_text().replace("\\\n", " ")
    lock, cuda = _pins(LOCK.read_text()), _pins((DOCKER / "colmap-cuda.constraints").read_text())
    assert cuda["pycolmap-cuda12"] == lock["pycolmap"]
    assert set(cuda) & set(lock) == set(), "nothing pinned twice"
    install = text.index("pip install -c /src/requirements.lock /src/libs /src/services/colmap")
    assert install < text.index("pip uninstall -y pycolmap") < text.index("colmap-cuda.constraints pycolmap-cuda12")
    assert "assert pycolmap.has_cuda" in text
    # What the CUDA build links to beyond its wheel (readelf -d of pycolmap-cuda12 4.2.1's _core).
    assert "libsm6 libice6 libx11-6 libxext6" in text
    assert 'CMD ["python", "-m", "photosplat_colmap"]' in text


def test_the_cpu_trainer_image_stays() -> None:
    text = (DOCKER / "trainer.Dockerfile").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    assert "/src/services/trainer && " in text and "[cuda]" not in text
