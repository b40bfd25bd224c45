"""User accounts: profiles, roles and their administration."""
