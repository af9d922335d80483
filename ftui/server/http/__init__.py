"""HTTP: routes for both dialects, request checks, wire views, the OpenAI error shape and the
edge guard (Host, Origin, limits)."""
