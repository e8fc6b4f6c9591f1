"""hsslin: hierarchical structured matrices with a C++/Eigen core."""
from ._loader import core as _core

__version__ = "0.1.0"
