"""The synthetic thorax CT phantom: raylung's built-in data set.

>>> from raylung.phantom import make_case
>>> case = make_case(seed=0, index=0, pathological=True, size=96, slices=(16, 24))
>>> case.image.dtype.name, case.domain
('int16', 'pathological')
"""

from raylung.phantom.case import PhantomCase, make_case
from raylung.phantom.write import write_phantoms

__all__ = ["PhantomCase", "make_case", "write_phantoms"]
