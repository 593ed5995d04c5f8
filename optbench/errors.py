"""The one exception users see: a one-line message naming the key path or file, the value and what is accepted."""


def one_line(text: str) -> str:
    """`text` with every non-printable character escaped (`\\n`, `\\x00`, `\\u202e`): a key from a file stays one line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class OptbenchError(Exception):
    """Bad input; the CLI prints `error: <message>` on stderr and exits with code 2."""

    def __init__(self, message: str):
        # Keys and values in messages come from user files; escaping here keeps every error one line.
        super().__init__(one_line(str(message)))
