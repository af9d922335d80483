"""ftui: fine-tune language models from the terminal, through any OpenAI-style API or its own
local server."""

__version__ = "0.1.0"
