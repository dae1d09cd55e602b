"""Channels: what a message says (content, templates) and the providers that carry it."""
