"""Run the graphcost CLI in-process, as the console script does (exit codes, one-line errors)."""
from graphcost.cli import main


def run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err
