"""Inbound: accepting what providers push, routing it by number, delivering it to people."""
