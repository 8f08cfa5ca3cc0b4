"""NeRF-style camera files (``transforms.json``): one frame's intrinsics and pose in COLMAP's
convention. Read by the colmap service (known poses) and the trainer (NeRF-synthetic folders),
written by the synthetic test scenes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# NeRF/Blender cameras look down -z with y up; COLMAP's look down +z with y down.
OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def frame_camera(doc: dict[str, Any], frame: dict[str, Any], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """``(K, cam_from_world)`` (3x3, 3x4) of ``frame`` for an image of ``width`` x ``height``;
    per-frame intrinsics override the file's shared ones."""
    intr = {**doc, **frame}
    fx = intr.get("fl_x") or 0.5 * width / math.tan(0.5 * float(intr["camera_angle_x"]))
    fy = intr.get("fl_y") or fx
    K = np.array([[fx, 0, intr.get("cx", width / 2)], [0, fy, intr.get("cy", height / 2)], [0, 0, 1.0]])
    world_from_cam = np.asarray(frame["transform_matrix"], float) @ OPENGL_FROM_OPENCV
    return K, np.linalg.inv(world_from_cam)[:3]
