"""Authentication: credentials, tokens, sessions and the guards every router uses."""
