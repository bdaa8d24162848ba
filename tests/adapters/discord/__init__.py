"""Discord adapter tests against the fake Discord (tests/fakes/discord_server.py)."""
