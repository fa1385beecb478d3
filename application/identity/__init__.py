"""Identity and organizations: accounts, API keys, members, incidents."""
