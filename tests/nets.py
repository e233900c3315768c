"""Small hand-checkable networks shared by the core tests."""
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, ch=16):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(ch, ch, 1, bias=False)

    def forward(self, x):
        return x + self.c2(torch.relu(self.c1(x)))


class LoopNet(nn.Module):
    """Stem conv 3->16 k3 s2, one residual block run ``n`` times, head conv 16->5 k1 with bias."""

    def __init__(self, n=3, shared=True):
        super().__init__()
        self.n = n
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False)
        self.blocks = nn.ModuleList([Block()] if shared else [Block() for _ in range(n)])
        self.head = nn.Conv2d(16, 5, 1)

    def forward(self, x):
        x = self.stem(x)
        for i in range(self.n):
            x = self.blocks[0 if len(self.blocks) == 1 else i](x)
        return self.head(x)


class AnytimeNet(nn.Module):
    """One output per iteration, each through its own head."""

    def __init__(self, n=3):
        super().__init__()
        self.n = n
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = nn.Conv2d(8, 8, 3, padding=1)
        self.heads = nn.ModuleList([nn.Conv2d(8, 2, 1) for _ in range(n)])

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i in range(self.n):
            x = torch.relu(self.block(x))
            outs.append(self.heads[i](x))
        return outs


class TiedNet(nn.Module):
    """Two conv modules holding one tied weight Parameter (different biases)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        if x.abs().sum() >= 0:  # data-dependent control flow (always true): fx cannot trace this
            return self.conv(x)
        return torch.zeros(x.size())


class WrapsUntraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = nn.Conv2d(3, 3, 1)
        self.inner = DataDependent()

    def forward(self, x):
        return self.inner(self.pre(x))


def make_loopnet(n: int = 3):
    return LoopNet(n)


class Spectral(nn.Module):
    """A linear layer then an FFT: an op nobody (graphcost or torch's flop counter) has a formula for."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return torch.fft.rfft(self.fc(x)).abs()


def make_spectral():
    return Spectral()


class TwoInputs(nn.Module):
    """Token ids through an embedding, plus an optional float bias given by keyword."""

    def __init__(self, vocab=50, dim=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.fc = nn.Linear(dim, 4)

    def forward(self, input_ids, bias=None):
        h = self.embed(input_ids)
        if bias is not None:
            h = h + bias
        return self.fc(h)


def make_two_inputs():
    return TwoInputs()


def make_failing(**params):
    raise TypeError("unsupported operand inside the factory")


class DictHeads(nn.Module):
    """Returns a dict: the main output, and an auxiliary pair (a nested tuple)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)
        self.aux = nn.Conv2d(4, 1, 1)

    def forward(self, x):
        h = self.stem(x)
        return {"out": self.head(h), "aux": (self.aux(h), h)}


def make_dict_heads():
    return DictHeads()


def make_anytime(n: int = 3):
    return AnytimeNet(n)


class ShapeLoop(nn.Module):
    """Loops over its input's length in Python: torch.fx cannot trace it (a Proxy is no int),
    torch.export can (non-strict: shapes are concrete)."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.cell = nn.Linear(2 * width, width)
        self.width = width

    def forward(self, x):
        h = x.new_zeros(x.shape[0], self.width)
        for t in range(x.shape[1]):
            h = torch.tanh(self.cell(torch.cat([x[:, t], h], dim=-1)))
        return h


class TiedLM(nn.Module):
    """Embedding and output head share one weight (as GPT-2's wte / lm_head)."""

    def __init__(self, vocab: int = 50, width: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.body = nn.Linear(width, width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        return self.head(torch.relu(self.body(self.embed(ids))))
