"""Old import path of :mod:`graphcost.runtime.store`, kept so existing code keeps working."""
from graphcost.runtime.store import *  # noqa: F401,F403
from graphcost.runtime.store import __all__  # noqa: F401
