"""Client protocols and the translation between them: Anthropic Messages to and from Chat
Completions (the hub every provider speaks). Pure: dicts and bytes in, dicts and bytes out;
imports only ``core``."""
