"""`ftui serve`: the local OpenAI-style fine-tuning server (the `ftui[local]` extra)."""

# Where `ftui serve` takes its API key from. Defined here, importing nothing, so the command can
# name it without importing the server, and the runner can keep it from training processes.
API_KEY_ENV = "FTUI_SERVE_API_KEY"
