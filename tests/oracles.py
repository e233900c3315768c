"""Independent cost counters the model tests check graphcost's models against.

Importable by name from any test file (setup.cfg: ``pythonpath = tests``).
"""
import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode


def macs_and_output(model: nn.Module, shape) -> tuple:
    """(MACs, output) of ``model`` on an input of ``shape``, counted by PyTorch's FlopCounterMode.

    The forward runs on fake tensors (nothing is allocated): the output holds shapes, not values.
    MACs = FLOPs // 2.
    """
    with FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.empty(*shape)
        with FlopCounterMode(display=False) as counter:
            output = model(x)
    return counter.get_total_flops() // 2, output


def eager_macs(model: nn.Module, *inputs, **kw_inputs) -> int:
    """MACs of ``model(*inputs, **kw_inputs)`` by FlopCounterMode with attention as explicit matmuls.

    Each input is a shape (a float tensor of that shape) or a tensor; the forward runs on fake
    tensors in eval mode, with the fused ``nn`` fast paths off and attention on the math backend
    (so QK^T and AV are two counted matmuls whatever the device). MACs = FLOPs // 2.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model.eval()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode, sdpa_kernel(SDPBackend.MATH):
            device = next((p.device for p in model.parameters()), torch.device("cpu"))

            def fake(value):
                return torch.empty(*value, device=device) if isinstance(value, (tuple, list)) \
                    else mode.from_tensor(value.to(device) if value.device != device else value)

            args = [fake(v) for v in inputs]
            kwargs = {k: fake(v) for k, v in kw_inputs.items()}
            with FlopCounterMode(display=False) as counter:
                model(*args, **kwargs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return counter.get_total_flops() // 2


def flop_counter_macs(model: nn.Module, shape) -> int:
    """MACs of ``model`` on an input of ``shape`` (FlopCounterMode on fake tensors, FLOPs // 2)."""
    return macs_and_output(model, shape)[0]


def macs_and_shape(model: nn.Module, shape) -> tuple:
    """(MACs, output shape as a tuple) for a model with a single tensor output."""
    macs, output = macs_and_output(model, shape)
    return macs, tuple(output.shape)


def hook_macs(model: nn.Module, shape) -> int:
    """MACs of the Conv2d and Linear layers, by forward hooks on the meta device.

    Moves ``model`` to the meta device and sets eval mode (nothing is allocated).
    """
    model = model.to("meta").eval()
    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total[0] += output.numel() * (module.in_channels // module.groups) * k
        else:
            total[0] += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.empty(*shape, device="meta"))
    for handle in handles:
        handle.remove()
    return total[0]


def param_count(model: nn.Module) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters())


def module_calls(gm: fx.GraphModule) -> dict:
    """{call_module target: number of call_module nodes with that target} of a traced module."""
    calls = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    return calls


def called_modules(gm: fx.GraphModule) -> list:
    """The module object of every call_module node, in graph order (one entry per call)."""
    mods = dict(gm.named_modules())
    return [mods[n.target] for n in gm.graph.nodes if n.op == "call_module"]
