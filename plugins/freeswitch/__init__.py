"""FreeSWITCH: inbound SMS to the extension's SIP phones (event socket), and their replies."""
