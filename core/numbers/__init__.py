"""Message settings of numbers at run time: the API, `pbxsms numbers` and the TOML rows."""
