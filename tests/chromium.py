"""A Chromium for the browser tests: found on the machine, or installed from the system's package registry.

The README's test command must run the browser tests on a fresh machine, so the tests obtain the browser
themselves rather than relying on a separate setup step. Playwright's own browser download is not used (no
network but package registries): the browser is the distribution's ``chromium`` package, installed with
``apt-get`` once, under a file lock (parallel test processes wait for one install instead of racing
apt's own locks), with apt's output in a log file. Where no browser can be found or installed the tests
fail with one line saying what to do; they never skip.
"""
import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome")
LOCK = Path("/var/lock/graphcost-chromium-install.lock")
LOG = Path("/var/log/graphcost-chromium-install.log")
INSTALL = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"


class ChromiumUnavailable(RuntimeError):
    """No Chromium on the machine and none could be installed; the message says how to get one."""


def find_chromium():
    """The path of a Chromium already on this machine, or None.

    ``GRAPHCOST_CHROMIUM`` wins when set (it must then exist); else the first of ``CANDIDATES`` on PATH;
    else a browser Playwright downloaded earlier (``playwright install chromium``).
    """
    given = os.environ.get("GRAPHCOST_CHROMIUM")
    if given:
        if not os.access(given, os.X_OK):
            raise ChromiumUnavailable(f"GRAPHCOST_CHROMIUM={given} is not an executable file")
        return given
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return _playwright_browser()


def _playwright_browser():
    """Playwright's own Chromium, where someone already ran ``playwright install chromium`` (never run here)."""
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            path = p.chromium.executable_path
    except Exception:  # no playwright, or its driver cannot start: the other ways remain
        return None
    return path if path and os.access(path, os.X_OK) else None


def _install_chromium():
    """``apt-get install chromium`` as root, once per machine (file lock), apt's output in ``LOG``."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ChromiumUnavailable(
            "the browser tests need Chromium: install it (Debian/Ubuntu: `sudo apt-get install chromium`) "
            "or set GRAPHCOST_CHROMIUM to a Chromium executable; they could not install it themselves "
            "(that needs root and apt-get)")
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second test process waits here, then finds the browser
        found = find_chromium()
        if found:
            return found
        with open(LOG, "w") as log:
            done = subprocess.run(["sh", "-c", INSTALL], stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=1800)
    found = find_chromium()
    if done.returncode != 0 or found is None:
        raise ChromiumUnavailable(f"installing Chromium for the browser tests failed (`{INSTALL}` exited "
                                  f"{done.returncode}; its output is in {LOG})")
    return found


def obtain_chromium():
    """A Chromium executable: the machine's own, else the ``chromium`` package installed now.

    Raises
    ------
    ChromiumUnavailable
        None is installed and this process cannot install one (not root, no apt-get, apt failed).
    """
    return find_chromium() or _install_chromium()
