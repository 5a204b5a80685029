"""Organizations: registration, API keys and authentication."""
