"""apihub token-keeper: one token per (provider, account) for the whole fleet."""

__all__: list[str] = []
