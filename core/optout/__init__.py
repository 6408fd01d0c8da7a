"""Opt-outs: STOP, START and HELP from customers, and carriers' opt-out errors."""
