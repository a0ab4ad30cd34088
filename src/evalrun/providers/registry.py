"""The one factory of providers: a profile's ``api`` names the module that serves it.

Modules are imported only when a profile of their kind is used, so the command line starts fast
whatever kinds exist. Adding a kind of provider is one module offering what ``ProviderKind`` lists,
and one line in ``_KINDS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, cast

from .profiles import ProviderProfile

if TYPE_CHECKING:
    from .base import ClientOptions, Provider

__all__ = ["KINDS", "ProviderKind", "cache_identity", "check_profile", "open_provider", "own_profile_keys"]

_KINDS: dict[str, str] = {
    "openai": "evalrun.providers.openai",  # every OpenAI-compatible chat-completions API
    "anthropic": "evalrun.providers.anthropic",  # Anthropic's Messages API
    "sim": "evalrun.providers.sim",  # the simulated provider, started for the run
}
KINDS = tuple(_KINDS)


class ProviderKind(Protocol):
    """What a provider module offers the registry."""

    #: Whether a profile of this kind must give ``base_url`` (else the kind knows its own).
    BASE_URL_REQUIRED: bool
    #: Keys of a profile that this kind reads as its own options, not as the profile's fields
    #: (the simulated provider's ``rpm`` is its server's budget, not the client's).
    OWN_PROFILE_KEYS: frozenset[str]

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` saying what is wrong with a profile's own settings."""
        ...

    def identity(self, profile: ProviderProfile) -> Mapping[str, str]:
        """What cache keys record of the provider: its name and where its answers come from."""
        ...

    def open_provider(
        self, profile: ProviderProfile, api_key: str | None, options: ClientOptions
    ) -> AbstractAsyncContextManager[Provider]:
        """The provider, ready for calls, closed (and its server stopped) on exit."""
        ...


def _kind(api: str) -> ProviderKind:
    try:
        module = _KINDS[api]
    except KeyError:
        raise ValueError(f"unknown api '{api}' (known: {', '.join(KINDS)})") from None
    return cast(ProviderKind, importlib.import_module(module))


def check_profile(profile: ProviderProfile) -> None:
    """Raise ``ValueError`` when a profile cannot work: unknown api, bad options, no base URL."""
    kind = _kind(profile.api)
    kind.check_options(profile.options)
    if kind.BASE_URL_REQUIRED and not profile.base_url:
        raise ValueError(f"base_url: missing; a profile of api '{profile.api}' needs one")


def own_profile_keys(api: str) -> frozenset[str]:
    """The profile keys a kind keeps as its own options (none for an unknown kind)."""
    return _kind(api).OWN_PROFILE_KEYS if api in _KINDS else frozenset()


def cache_identity(profile: ProviderProfile) -> Mapping[str, str]:
    """The provider as cache keys record it, without opening it (for ``cache explain``)."""
    return _kind(profile.api).identity(profile)


def open_provider(
    profile: ProviderProfile, api_key: str | None, options: ClientOptions
) -> AbstractAsyncContextManager[Provider]:
    """The provider a profile describes, as an async context manager."""
    return _kind(profile.api).open_provider(profile, api_key, options)
