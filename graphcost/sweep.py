"""Old import path of :mod:`graphcost.explore`, kept so existing code keeps working."""
from graphcost.explore import *  # noqa: F401,F403
from graphcost.explore import __all__  # noqa: F401
