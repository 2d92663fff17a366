"""Early stopping, as both trainers do it: keep the weights of the epoch with the lowest
validation loss, and stop once ``patience`` epochs have passed without a better one."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Generic, TypeVar

from torch import nn

Log = TypeVar("Log")


class BestEpoch(Generic[Log]):
    """The best epoch so far, its weights and every epoch's log."""

    def __init__(
        self, net: nn.Module, patience: int, on_epoch: Callable[[Log], None] | None = None
    ) -> None:
        self.net, self.patience, self.on_epoch = net, patience, on_epoch
        self.loss, self.state, self.epoch = math.inf, copy.deepcopy(net.state_dict()), 0
        self.history: list[Log] = []

    def stop_after(self, epoch: int, log: Log, val_loss: float) -> bool:
        """Record the epoch; true when training should stop."""
        self.history.append(log)
        if self.on_epoch:
            self.on_epoch(log)
        if val_loss < self.loss:
            self.loss, self.state, self.epoch = (
                val_loss,
                copy.deepcopy(self.net.state_dict()),
                epoch,
            )
        elif epoch - self.epoch >= self.patience:
            return True
        return False

    def restore(self) -> None:
        """The best epoch's weights back into the network, which is left in evaluation mode."""
        self.net.load_state_dict(self.state)
        self.net.eval()
