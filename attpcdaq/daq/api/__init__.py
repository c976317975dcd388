"""The JSON API: status and commands, with token or session authentication."""
