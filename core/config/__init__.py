"""Configuration: settings from the environment and TOML, their problems and redaction."""
