import sys

print(f"hello from {sys.prefix}")
