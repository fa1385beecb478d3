"""AI: message analysis, the qualification assistant, lead scores (OpenAI or the offline model)."""
