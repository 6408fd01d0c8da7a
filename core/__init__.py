"""pbxsms core: the plugin contract at the top, features in folders by concern."""

__version__ = "0.1.0"
