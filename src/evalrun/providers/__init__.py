"""Providers: the model APIs a run calls, behind one seam.

``base`` holds what every provider shares (the answer, the errors, the retry policy, the
``Provider`` protocol the engine speaks to); ``http`` the HTTP machinery every HTTP API shares;
``openai``, ``anthropic`` and ``sim`` are the kinds; ``registry`` opens the one a profile names.
"""

from .base import ChatResponse, ClientOptions, Provider, ProviderError, RetryNotice
from .profiles import BUILTIN_PROFILES, ProviderProfile
from .registry import KINDS, check_profile, open_provider

__all__ = [
    "BUILTIN_PROFILES",
    "KINDS",
    "ChatResponse",
    "ClientOptions",
    "Provider",
    "ProviderError",
    "ProviderProfile",
    "RetryNotice",
    "check_profile",
    "open_provider",
]
