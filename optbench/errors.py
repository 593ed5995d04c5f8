"""The one exception users see: a one-line message naming the key path or file, the value and what is accepted."""


class OptbenchError(Exception):
    """Bad input; the CLI prints `error: <message>` on stderr and exits with code 2."""
