"""Errors a user can cause. The CLI prints their message as one stderr line and exits with 2."""


class UserError(Exception):
    """Bad input from the user: one sentence saying what is wrong and what to do."""
