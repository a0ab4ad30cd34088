"""Providers: the model APIs a run calls, behind one seam.

``base`` holds what every provider shares (the answer, the errors, the rate budgets, the
``Provider`` protocol the model client speaks to); ``http`` the HTTP machinery every HTTP API shares;
``openai``, ``anthropic`` and ``sim`` are the kinds; ``registry`` opens the one a profile names.
Names are re-exported lazily: settings read profiles without loading the HTTP machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .base import ChatResponse, ClientOptions, Provider, ProviderError, TransientError
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
    "TransientError",
    "check_profile",
    "open_provider",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "ChatResponse": "base",
        "ClientOptions": "base",
        "Provider": "base",
        "ProviderError": "base",
        "TransientError": "base",
        "BUILTIN_PROFILES": "profiles",
        "ProviderProfile": "profiles",
        "KINDS": "registry",
        "check_profile": "registry",
        "open_provider": "registry",
    },
)
