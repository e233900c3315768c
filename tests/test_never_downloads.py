"""graphcost never downloads (no model hubs, no weights): proven with the network cut off.

Every way out is made to raise and to record the attempt: a socket connect to any internet address,
name resolution, ``urllib``, torch.hub's and huggingface_hub's download functions. Models from every
source then build and count with nothing attempted, and asking for weights (``weights=``,
``weights_backbone=``, ``pretrained=``, ``name_or_path=``) is refused in one line before any build.
"""
import json
import socket
import urllib.request

import pytest

from clirun import run
from oracles import eager_macs


class NetworkUsed(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Cut the network for the test; yields the list of attempts (each would have been a download)."""
    attempts = []

    def refuse(what):
        def raiser(*args, **kwargs):
            attempts.append((what, args[:2]))
            raise NetworkUsed(f"network used: {what} {args[:2]!r}")
        return raiser

    real_connect = socket.socket.connect

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            refuse("socket.connect")(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda sock, address: connect(sock, address) or 0)
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.request.urlopen"))
    import torch.hub

    for name in ("load_state_dict_from_url", "download_url_to_file", "load"):
        monkeypatch.setattr(torch.hub, name, refuse(f"torch.hub.{name}"))
    import huggingface_hub

    for name in ("hf_hub_download", "snapshot_download"):
        monkeypatch.setattr(huggingface_hub, name, refuse(f"huggingface_hub.{name}"))
    yield attempts


def test_the_guard_catches_a_download(no_network):
    """The fixture is not a no-op: each way out raises and is recorded."""
    with pytest.raises(NetworkUsed):
        urllib.request.urlopen("https://download.pytorch.org/models/resnet18-f37072fd.pth")
    with pytest.raises(NetworkUsed):
        socket.create_connection(("huggingface.co", 443))
    with socket.socket() as sock, pytest.raises(NetworkUsed):
        sock.connect(("127.0.0.1", 9))
    import torch.hub

    with pytest.raises(NetworkUsed):
        torch.hub.load_state_dict_from_url("https://download.pytorch.org/models/resnet18-f37072fd.pth")
    assert len(no_network) == 4


def test_torchvision_model_counts_without_the_network(capsys, no_network):
    import torchvision

    rc, out, err = run(capsys, "analyze", "torchvision:resnet18", "--format", "json")
    assert rc == 0, err
    reference = eager_macs(torchvision.models.resnet18(weights=None), (1, 3, 224, 224))
    assert json.loads(out)["macs"] == reference == 1_814_073_344 and no_network == []


@pytest.mark.parametrize("source", ["timm:resnet18", "hf:bert"])
def test_timm_and_hf_models_build_without_the_network(capsys, no_network, source):
    params = ["--param", "num_hidden_layers=1", "--param", "hidden_size=32", "--param", "num_attention_heads=2",
              "--param", "intermediate_size=64"] if source == "hf:bert" else ["--input", "32x32"]
    rc, out, err = run(capsys, "analyze", source, *params, "--format", "json")
    assert rc == 0, err
    assert json.loads(out)["macs"] > 0 and no_network == []


@pytest.mark.parametrize("source, param", [
    ("torchvision:resnet18", "weights=DEFAULT"),
    ("torchvision:resnet18", "weights=IMAGENET1K_V1"),
    ("torchvision:lraspp_mobilenet_v3_large", "weights_backbone=DEFAULT"),
    ("timm:resnet18", "pretrained=True"),
    ("hf:bert", "pretrained=True"),
    ("hf:bert", "name_or_path=bert-base-uncased"),
])
def test_asking_for_weights_is_refused_before_any_build(capsys, no_network, source, param):
    rc, out, err = run(capsys, "analyze", source, "--param", param)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "never downloads weights" in err, err
    assert no_network == []  # refused, not attempted and failed


@pytest.mark.parametrize("name, params", [
    ("torchvision:resnet18", {"weights": "DEFAULT"}),
    ("timm:resnet18", {"pretrained": True}),
    ("hf:bert", {"pretrained": True}),
])
def test_the_library_refuses_weights_too(no_network, name, params):
    from graphcost import UserError
    from graphcost.resolve import ModelSpec, build_for_shapes

    with pytest.raises(UserError, match="never downloads weights"):
        build_for_shapes(ModelSpec(name=name, params=params))
    assert no_network == []
