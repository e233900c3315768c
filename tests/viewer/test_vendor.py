"""The vendored JavaScript is the npm release named in vendor/README.md, with its licences, shipped as package data."""
import hashlib
import re
from importlib import resources

from graphcost.viewer.page import VENDOR_SCRIPTS

VENDOR = resources.files("graphcost.viewer").joinpath("vendor")


def test_vendored_files_match_the_recorded_npm_hashes():
    readme = VENDOR.joinpath("README.md").read_text()
    recorded = dict((name, digest) for digest, name in re.findall(r"#\s+([0-9a-f]{64})\s+(\S+\.js)\b", readme))
    assert set(recorded) == set(VENDOR_SCRIPTS)
    for name in VENDOR_SCRIPTS:
        assert hashlib.sha256(VENDOR.joinpath(name).read_bytes()).hexdigest() == recorded[name], name


def test_every_vendored_package_has_its_licence():
    for package in ("cytoscape", "cytoscape-dagre", "dagrejs-dagre", "dagrejs-graphlib"):
        text = VENDOR.joinpath(f"LICENSE.{package}").read_text()
        assert "Permission is hereby granted, free of charge" in text, package


def test_package_data_ships_the_vendor_and_static_folders():
    import configparser
    import os

    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(os.path.dirname(__file__), "..", "..", "setup.cfg"))
    assert "graphcost.viewer" in cfg["options"]["packages"].split()
    data = cfg["options.package_data"]["graphcost.viewer"]
    assert "vendor/*" in data and "static/*" in data
