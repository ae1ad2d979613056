"""The method registry: a new method is one module plus one line here."""
from __future__ import annotations

from ..errors import HashbenchError
from .base import DatasetInfo, Method, TrainSet
from .cmfh import CMFH
from .csq import CSQ
from .cvh import CVH
from .djsrh import DJSRH
from .dnnh import DNNH
from .dpsh import DPSH
from .dqn import DQN
from .dsh import DSH
from .gpq import GPQ
from .hashnet import HashNet
from .hyp2 import HyP2
from .itq import ITQ
from .lsh import LSH
from .opq import OPQ
from .pcah import PCAH
from .pq import PQ
from .sh import SH
from .wsdhq import WSDHQ

REGISTRY: dict[str, type[Method]] = {m.name: m for m in (LSH, DNNH, DJSRH, WSDHQ, HyP2, GPQ,
                                                          PCAH, ITQ, SH, PQ, OPQ, CVH, CMFH,
                                                          DPSH, HashNet, CSQ, DSH, DQN)}


def get_method(name) -> type[Method]:
    if name not in REGISTRY:
        raise HashbenchError(f"method: {name!r} is not allowed; use one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


__all__ = ["REGISTRY", "get_method", "Method", "TrainSet", "DatasetInfo"]
