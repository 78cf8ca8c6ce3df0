"""Collab Hub runtime: settings, store, event bus, auth, app and CLI."""
