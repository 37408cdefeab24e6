"""Opening frames: the one place that refuses what should not be decoded, naming the frame.

A frame is opened only when it is a regular file, and its header is checked against a pixel budget before any
pixel is decoded: a 60-byte PNG may claim 20000x20000 pixels. Every failure, PIL's decompression-bomb error and
warning included, is a :class:`PoseTrackFormatError` naming the frame.
"""

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.outputs import input_file

__all__ = ["check_pixels", "open_image"]


def check_pixels(width: int, height: int, path: str | Path) -> None:
    """Refuse a frame whose header claims more pixels than PIL decodes (``Image.MAX_IMAGE_PIXELS``, ~89 million).

    Raises:
        PoseTrackFormatError: the frame is larger (names the frame and its size).
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise PoseTrackFormatError(
            path, "image", f"claims {width}x{height} pixels, more than a frame may have ({limit})"
        )


@contextlib.contextmanager
def open_image(source: str | Path | bytes, path: str | Path) -> Iterator[Image.Image]:
    """PIL's image of a frame file or of its bytes, not yet decoded; a failure inside the block names the frame.

    Args:
        source: The frame file, or its bytes.
        path: The frame's name in messages.

    Raises:
        PoseTrackFormatError: the file is missing or not a regular file, its header claims more pixels than
            `check_pixels` allows, or it is not an image PIL can decode (raised on open or while decoding in
            the block).
    """
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its limit; a frame that large is refused all the same
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else input_file(source)) as image:
                yield image
    except PoseTrackFormatError:
        raise
    except FileNotFoundError:
        raise PoseTrackFormatError(path, "image", "frame not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise PoseTrackFormatError(path, "image", f"claims more pixels than a frame may have ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())
        raise PoseTrackFormatError(path, "image", f"unreadable frame ({reason})") from None
