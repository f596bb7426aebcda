"""The OpenAI upstream, shared by the GPT-5 chat and gpt-image-1 adapters (one pool)."""

from __future__ import annotations

from services.providers.adapter import AdapterEnv
from services.providers.upstream import Upstream

KEY_ENV = "OPENAI_API_KEY"


def openai_upstream(env: AdapterEnv) -> Upstream:
    settings = env.settings
    return env.upstream(
        "openai",
        lambda: Upstream(
            settings,
            label="OpenAI",
            base_url=settings.openai_base_url,
            key_env=KEY_ENV,
            headers={"Authorization": f"Bearer {settings.openai_api_key.get_secret_value()}"},
        ),
    )


def openai_missing(env: AdapterEnv) -> str | None:
    return None if env.settings.openai_api_key else KEY_ENV
