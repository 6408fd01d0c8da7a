"""Stand-ins for the remote services pbxsms talks to (carriers, the mobile app)."""
