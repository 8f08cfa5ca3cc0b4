"""The order training views are visited in: batches of one image size, every view once per epoch."""

from __future__ import annotations

from collections import Counter

import numpy as np

from photosplat_trainer.dataset import View


class ViewBatches:
    """Batches of ``batch_size`` training views of one image size (fewer only when fewer views share
    that size), each view once per epoch; a batch cut short by the end of an epoch is filled from the
    next one, so every step has the same shape."""

    def __init__(self, views: list[View], batch_size: int, generator: np.random.Generator) -> None:
        self.views, self.batch_size, self.generator = views, batch_size, generator
        self.order: list[int] = []
        self.same_size = Counter(v.pixels.shape for v in views)

    def next(self) -> list[View]:
        views = self.views
        if not self.order:
            self.order = list(self.generator.permutation(len(views)))
        first = self.order.pop()
        batch = [first]
        size = views[first].pixels.shape
        wanted = min(self.batch_size, self.same_size[size])
        while len(batch) < wanted:
            same = [i for i in reversed(self.order) if views[i].pixels.shape == size and i not in batch]
            same = same[: wanted - len(batch)]
            for i in same:
                self.order.remove(i)
            batch += same
            if len(batch) < wanted:
                self.order = list(self.generator.permutation(len(views))) + self.order
        return [views[i] for i in batch]
