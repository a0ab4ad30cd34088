"""The simulated OpenAI-compatible provider used by the demo, ``bench`` and the tests."""

from .process import SimProcess, serve
from .server import SimConfig, SimServer

__all__ = ["SimConfig", "SimProcess", "SimServer", "serve"]
