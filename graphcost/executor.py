"""Old import path of :mod:`graphcost.runtime.executor`, kept so existing code keeps working."""
from graphcost.runtime.executor import *  # noqa: F401,F403
from graphcost.runtime.executor import __all__  # noqa: F401
