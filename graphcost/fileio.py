"""Files written whole or not at all: atomic writes and the clean-up of a killed writer's leftovers.

Every output graphcost writes (figures, tables, checkpoints, GraphML, HTML pages) goes through
:func:`write_atomic`: the bytes land in a hidden temporary file beside the target, which is moved
into place only when complete, so a crash or Ctrl-C never leaves a half-written output.

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> write_atomic(os.path.join(folder, "a.txt"), lambda tmp: open(tmp, "w").write("done"))
>>> sorted(os.listdir(folder))
['a.txt']
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import List


def output_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


#: Hidden temporary files are ``.graphcost-<pid>-<random><ext>``: the pid tells a live writer from a dead one.
TEMP_PREFIX = ".graphcost-"
_TEMP_NAME = re.compile(r"^\.graphcost-(\d+)-")


def temp_prefix() -> str:
    """Prefix of this process's hidden temporary files."""
    return f"{TEMP_PREFIX}{os.getpid()}-"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_temp_files(directory: str) -> List[str]:
    """Remove the hidden temporary files of graphcost processes that no longer run (killed mid-write).

    Returns the paths removed. Files of running processes, and every other file, are left alone.
    """
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if match and not _running(int(match.group(1))):
            path = os.path.join(directory, name)
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def write_atomic(path: str, write) -> None:
    """Call ``write(tmp_path)`` then move the file into place: never a half-written output.

    Temporary files that a killed graphcost left in the same folder are removed first.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)  # an output folder is created with its first file, never before
    clean_stale_temp_files(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=temp_prefix(), suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, output_file_mode())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
