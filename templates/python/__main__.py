"""Entry point: `python -m {module}` (the service's `command` in the hsm registry)."""


def main() -> None:
    print("{name} is running")


if __name__ == "__main__":
    main()
