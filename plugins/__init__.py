"""Built-in pbxsms plugins, registered exactly like external ones."""
