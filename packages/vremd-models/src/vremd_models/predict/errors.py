"""The one error type of the predict subpackage: input that `vremd-predict` cannot use."""

__all__ = ["PredictInputError", "first_line"]


class PredictInputError(ValueError):
    """A frame folder, video, detection or annotation file that cannot be used as given.

    The message names the file and the field or frame at fault; the CLIs print it as one line.
    """


def first_line(error: BaseException) -> str:
    """The first line of a library's error message (or its type's name), for a one-line CLI error."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
