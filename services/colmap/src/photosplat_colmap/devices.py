"""Where SIFT runs. Only pycolmap's CUDA build (the ``pycolmap-cuda12`` distribution, which the
colmap-cuda image installs in place of ``pycolmap``; both provide the module ``pycolmap``) can use a
GPU, and only where the driver shows one: the same build on a machine without a GPU runs on the CPU."""

from __future__ import annotations

import functools

import pycolmap

from photosplat_colmap.types import SfmOptions


@functools.cache
def cuda_devices() -> int:
    """GPUs pycolmap can use (0 with the CPU build, or with the CUDA build and no driver)."""
    if not pycolmap.has_cuda:
        return 0
    return int(pycolmap.get_num_cuda_devices())


def sift_on_gpu(options: SfmOptions) -> bool:
    return options.use_gpu and cuda_devices() > 0


def sift_device(options: SfmOptions) -> pycolmap.Device:
    """Passed to every extraction and matching call: their default, ``Device.auto``, picks CUDA
    whenever the build has it and then fails on a machine without a GPU ("Check failed:
    num_cuda_devices > 0"); ``use_gpu`` in their options does not override it."""
    return pycolmap.Device.cuda if sift_on_gpu(options) else pycolmap.Device.cpu


def describe(options: SfmOptions) -> str:
    """For the job log: which build and device did the work."""
    build = f"pycolmap {pycolmap.__version__}, " + ("CUDA build" if pycolmap.has_cuda else "CPU build")
    if not pycolmap.has_cuda:
        return f"{build}: SIFT on the CPU"
    if not options.use_gpu:
        return f"{build}: SIFT on the CPU (use_gpu off)"
    if cuda_devices() == 0:
        return f"{build}, no GPU visible: SIFT on the CPU"
    return f"{build}: SIFT on the GPU ({cuda_devices()} visible)"
