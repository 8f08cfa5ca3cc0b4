"""Camera pose refinement: a learned correction of each training view's pose.

Each view gets 9 numbers, a translation and a rotation in the continuous 6D form of Zhou et al.
("On the Continuity of Rotation Representations", CVPR 2019), starting at the identity; the corrected
camera-to-world is ``camera_to_world @ [R | t]``. Small SfM pose errors otherwise blur the scene.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def rotation_from_6d(d6: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3): Gram-Schmidt on the two vectors; the rows are the new basis."""
    b1 = F.normalize(d6[..., :3], dim=-1)
    a2 = d6[..., 3:]
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-2)


class PoseCorrection(torch.nn.Module):
    def __init__(self, n_views: int) -> None:
        super().__init__()
        self.embeds = torch.nn.Parameter(torch.zeros(n_views, 9))
        self.register_buffer("identity", torch.tensor(_IDENTITY_6D), persistent=False)

    def forward(self, viewmats: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Corrected world-to-camera matrices (C, 4, 4) of the views ``indices``."""
        d = self.embeds[indices]
        rot = rotation_from_6d(d[:, 3:] + self.identity)
        t = d[:, :3]
        # inverse of [R | t]: [R^T | -R^T t]; the corrected view matrix is that inverse @ viewmat.
        rot_t = rot.transpose(-1, -2)
        top = torch.cat([rot_t, -(rot_t @ t[:, :, None])], dim=-1)
        bottom = viewmats.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(len(d), 1, 4)
        return torch.cat([top, bottom], dim=-2) @ viewmats
