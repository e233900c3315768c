import os

# Tests must not depend on the terminal they run in.
os.environ.setdefault("COLUMNS", "160")
