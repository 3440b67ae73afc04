import os

print("embedder listening on", os.environ.get("EMBEDDER_PORT", "8081"))
