"""``--data pydoc``: the English text of CPython's own documentation (``pydoc_data.topics.topics``,
~465 kB in every Python: a real corpus with nothing to download) as byte-level tokens, like
``text:FILE``. The topics, sorted by name, are split by topic: every tenth (the 1st, 11th, ...) is
held out for evaluation (``test``), the others are ``train``, so no held-out sentence is trained on.
"""
from __future__ import annotations

from typing import Dict

from .base import register_source
from .text import TokenSource

#: Every HELD_OUT_EVERY-th topic (by sorted name) is held out.
HELD_OUT_EVERY = 10


def pydoc_topics() -> Dict[str, str]:
    """Topic name -> its text, from the running Python's ``pydoc_data``."""
    from pydoc_data.topics import topics  # lazy: 465 kB of text

    return dict(topics)


def pydoc_text(split: str) -> bytes:
    """The held-out (``test``) or training topics' text, UTF-8, topics separated by a blank line."""
    topics = pydoc_topics()
    names = sorted(topics)
    keep = [n for i, n in enumerate(names) if (i % HELD_OUT_EVERY == 0) == (split == "test")]
    return "\n\n".join(topics[n] for n in keep).encode("utf-8")


@register_source
class PydocSource(TokenSource):
    """CPython's documentation topics; held-out topics for evaluation."""

    scheme = "pydoc"

    def text_of(self, split: str) -> bytes:
        return pydoc_text(split)
