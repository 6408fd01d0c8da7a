"""pbxsms core: settings, events, plugins, HTTP and the serve runtime."""

__version__ = "0.1.0"
