"""``--data text:FILE``: a UTF-8 text file as byte-level tokens (ids 0..255, one per byte), cut into
fixed windows of the model's sequence length ``T`` (its first input's last dimension): inputs are
``T`` bytes, labels the ``T`` bytes that follow each (next-token prediction). The last tenth of the
text is the held-out (``test``) split, the rest ``train``; windows do not overlap.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import torch

from graphcost.errors import UserError

from .base import (DataSource, Samples, check_samples, check_split, fill_inputs, first_input, register_source)

#: Share of the text (its end) held out for evaluation.
HELD_OUT = 0.1
#: Byte-level vocabulary.
BYTE_VOCAB = 256


def byte_windows(data: bytes, length: int, samples: Optional[int]) -> torch.Tensor:
    """``(S, length + 1)`` int64 windows of ``data``, consecutive and non-overlapping (the last byte of
    one window starts the next), at most ``samples`` of them.

    >>> byte_windows(b"abcdefg", 2, None).tolist()
    [[97, 98, 99], [99, 100, 101], [101, 102, 103]]
    """
    tokens = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    count = (tokens.numel() - 1) // length
    if count < 1:
        raise UserError(f"the text has {len(data)} bytes; one window of the model's {length} tokens needs "
                        f"{length + 1}")
    count = min(count, samples) if samples else count
    starts = torch.arange(count) * length
    return tokens[starts.view(-1, 1) + torch.arange(length + 1).view(1, -1)]


class TokenSource(DataSource):
    """A language-model source over bytes: :meth:`text_of` gives each split's bytes."""

    task = "language-model"
    classes = BYTE_VOCAB

    def text_of(self, split: str) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def load(self, model_inputs: Any, samples: Optional[int] = None, *, split: str = "test", seed: int = 0,
             classes: Optional[int] = None) -> Samples:
        check_samples(samples)
        check_split(split)
        spec = first_input(model_inputs)
        if spec.dtype is None or spec.dtype.is_floating_point or len(spec.shape) != 2:
            raise UserError(f"{self.scheme} data is token ids for a language model taking N x T integer inputs; this "
                            f"model's input is {tuple(spec.shape)} {spec.dtype or 'float'}")
        windows = byte_windows(self.text_of(split), spec.shape[-1], samples)
        args, kwargs = fill_inputs(model_inputs, windows[:, :-1].to(spec.dtype),
                                   torch.Generator().manual_seed(seed), BYTE_VOCAB)
        return Samples(args, kwargs, windows[:, 1:].contiguous(), self.task, BYTE_VOCAB)


@register_source
class TextSource(TokenSource):
    """A UTF-8 file; checked (exists, not empty, valid UTF-8) when parsed."""

    scheme = "text"
    takes_path = True
    path_name = "FILE"

    def __init__(self, path: str):
        super().__init__(path)
        if not os.path.isfile(path):
            raise UserError(f"text file {path!r} does not exist; give text:FILE of a UTF-8 text file")
        try:
            with open(path, "rb") as f:
                data = f.read()
            data.decode("utf-8")
        except OSError as exc:
            raise UserError(f"cannot read text file {path!r}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"text file {path!r} is not UTF-8 (byte {exc.start}); give a UTF-8 text file") from None
        if len(data) < 2:
            raise UserError(f"text file {path!r} is empty; give a file with some text")
        self.data = data

    def text_of(self, split: str) -> bytes:
        cut = int(len(self.data) * (1 - HELD_OUT))
        return self.data[cut:] if split == "test" else self.data[:cut]
