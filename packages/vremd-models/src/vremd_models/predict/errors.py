"""The one error type of the predict subpackage: input that `vremd-predict` cannot use."""

__all__ = ["PredictInputError"]


class PredictInputError(ValueError):
    """A frame folder, video, detection or annotation file that cannot be used as given.

    The message names the file and the field or frame at fault; the CLIs print it as one line.
    """
