"""Rendering of results: human units and rich tables. No computing happens here."""
from __future__ import annotations

import io
import json
import os
import re
import tempfile
from typing import Any, Iterable, List, Sequence

from rich.console import Console
from rich.table import Table


def human(value: float, unit: str = "") -> str:
    """``1.5e9`` -> ``'1.50G'`` (K, M, G, T; powers of 1000).

    >>> human(182_000), human(6.2e9, "MACs"), human(12)
    ('182.00K', '6.20G MACs', '12')
    """
    value = float(value)
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            text = f"{value / scale:.2f}{prefix}"
            break
    else:
        text = f"{value:g}"
    return f"{text} {unit}".rstrip()


def megabytes(n_bytes: float) -> str:
    """Bytes as decimal megabytes (1 MB = 1e6 bytes, as the ItNet paper's numbers fit)."""
    return f"{n_bytes / 1e6:,.2f} MB"


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, soft_wrap=False, width=int(os.environ.get("COLUMNS", 120)))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        t.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[str(c) for c in row])
    return t


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


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


def frame_csv(frame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()
