"""The one exception type the CLI turns into a single line on stderr."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UserError(Exception):
    """Bad input or a state the user can fix: the message says what is wrong and what to do."""
