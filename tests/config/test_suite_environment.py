"""The suite runs without a developer's own settings: tests/conftest.py clears every
variable a settings model reads, found from the models themselves (no list to keep)."""

from __future__ import annotations

import os

from pbxsms.core.plugins import Plugins
from tests.helpers import settings_env_names


def test_every_available_plugins_prefix_is_cleared() -> None:
    prefixes, names = settings_env_names()
    models = Plugins(None).settings_models()
    assert {"clicksend", "twilio", "email", "mobileapp"} <= set(models)
    for name, model in models.items():
        assert model.model_config.get("env_prefix", "").upper() in prefixes, name
    assert {"PBXSMS_", "NATS_URL"} <= {*prefixes, *names}
    left = [key for key in os.environ
            if key.upper().startswith(prefixes) and key != "PBXSMS_ENV_FILE"]
    assert left == [], f"settings from the developer's environment: {left}"
