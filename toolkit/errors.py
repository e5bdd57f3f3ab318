"""The one exception type the CLI turns into a single line on stderr."""


class UserError(Exception):
    """Bad input or a state the user can fix: the message says what is wrong and what to do."""
