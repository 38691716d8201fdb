"""The update step the built-in language models (tiny-lm, its reward model, the audio world's model) are
pre-trained with: one fixed recipe, so their cached builds stay what they were."""

from __future__ import annotations

import torch


def pretrain_update(model: torch.nn.Module, loss: torch.Tensor, optimizer, schedule) -> None:
    """Backward, gradient norm clipped to 1, optimizer and schedule step, gradients cleared."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
