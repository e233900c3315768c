"""The browser tests' Chromium helper: it finds, installs or fails with one line; it never skips."""
import os

import pytest

import chromium


def test_given_executable_wins(monkeypatch, tmp_path):
    exe = tmp_path / "my-chromium"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("GRAPHCOST_CHROMIUM", str(exe))
    assert chromium.obtain_chromium() == str(exe)


def test_given_path_that_is_not_executable_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHCOST_CHROMIUM", str(tmp_path / "absent"))
    with pytest.raises(chromium.ChromiumUnavailable, match="GRAPHCOST_CHROMIUM=.*absent is not an executable"):
        chromium.obtain_chromium()


def test_without_root_it_fails_saying_how_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("GRAPHCOST_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser and no apt-get on PATH
    monkeypatch.setattr(chromium, "_playwright_browser", lambda: None)  # nor one Playwright downloaded
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(chromium.ChromiumUnavailable, match="apt-get install chromium.*GRAPHCOST_CHROMIUM"):
        chromium.obtain_chromium()
