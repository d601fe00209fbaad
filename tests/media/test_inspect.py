"""media.inspect: sniffing, dimensions, thumbnails, HEIF and MP4 boxes; media.uploads signing."""

import io
import warnings

import pytest
from PIL import Image

from postengine.media import inspect, uploads
from tests.media import files

SECRET = b"k" * 32


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (files.png(), "image/png"),
        (files.jpeg(), "image/jpeg"),
        (files.gif(), "image/gif"),
        (files.webp(), "image/webp"),
        (files.pdf(), "application/pdf"),
        (files.heic(), "image/heic"),
        (files.heic(major=b"mif1"), "image/heic"),  # mif1 with a heic compatible brand
        (files.ftyp(b"mif1", b"mif1") + b"\0" * 40, "image/heif"),
        (files.mp4(), "video/mp4"),
        (files.ftyp(b"qt  ") + b"\0" * 40, None),  # QuickTime is not accepted
        (files.ftyp(b"avif", b"mif1") + b"\0" * 40, None),
        (b"<html>hello</html>" + b"\0" * 50, None),
        (b"", None),
    ],
)
def test_sniff(data: bytes, expected: str | None) -> None:
    assert inspect.sniff(data[: inspect.SNIFF_BYTES]) == expected


def test_heic_and_heif_are_interchangeable_but_nothing_else_is() -> None:
    assert inspect.same_format("image/heif", "image/heic")
    assert inspect.same_format("image/jpeg", "image/jpeg")
    assert not inspect.same_format("image/jpeg", "image/png")


def test_image_dimensions_and_thumbnail() -> None:
    facts = inspect.inspect_image(files.jpeg(1200, 600), "image/jpeg")
    assert (facts.width, facts.height) == (1200, 600)
    assert facts.thumbnail is not None
    with Image.open(io.BytesIO(facts.thumbnail)) as thumb:
        assert thumb.format == "WEBP"
        assert thumb.size == (320, 160)


def test_small_images_are_not_enlarged_and_animations_give_their_first_frame() -> None:
    facts = inspect.inspect_image(files.gif(30, 20), "image/gif")
    assert (facts.width, facts.height) == (30, 20)
    assert facts.thumbnail is not None
    with Image.open(io.BytesIO(facts.thumbnail)) as thumb:
        assert thumb.size == (30, 20)


def test_exif_orientation_swaps_the_displayed_size() -> None:
    facts = inspect.inspect_image(files.jpeg(640, 480, orientation=6), "image/jpeg")
    assert (facts.width, facts.height) == (480, 640)


def test_transparent_webp_keeps_alpha_in_thumbnail() -> None:
    facts = inspect.inspect_image(files.webp(), "image/webp")
    assert facts.thumbnail is not None
    with Image.open(io.BytesIO(facts.thumbnail)) as thumb:
        assert thumb.mode == "RGBA"


def test_truncated_image_is_invalid() -> None:
    data = files.png(300, 300)
    with pytest.raises(inspect.InvalidFile, match="PNG"):
        inspect.inspect_image(data[: len(data) // 3], "image/png")


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (files.png_with_header(8, 8, ihdr_length=7), "image/png"),  # Pillow: ValueError, not OSError
        (files.gif_with_empty_frame(), "image/gif"),  # "tile cannot extend outside image"
    ],
    ids=["png-short-ihdr", "gif-empty-frame"],
)
def test_malformed_headers_are_invalid_files(data: bytes, content_type: str) -> None:
    with pytest.raises(inspect.InvalidFile, match="not a readable"):
        inspect.inspect_image(data, content_type)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (10_001, 10_000),  # over MAX_PIXELS, under Pillow's own error threshold
        (20_000, 10_000),  # over Pillow's DecompressionBombError threshold too
    ],
)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, at open
def test_too_many_pixels_says_the_limit_and_changes_no_warning_filter(width: int, height: int) -> None:
    filters = list(warnings.filters)
    with pytest.raises(inspect.InvalidFile, match="at most 100,000,000 pixels"):
        inspect.inspect_image(files.png_with_header(width, height), "image/png")
    assert warnings.filters == filters


def test_heif_dimensions_from_the_largest_ispe() -> None:
    facts = inspect.inspect_image(files.heic(4032, 3024), "image/heic")
    assert (facts.width, facts.height, facts.thumbnail) == (4032, 3024, None)
    with pytest.raises(inspect.InvalidFile):
        inspect.inspect_image(files.ftyp(b"heic") + b"\0" * 40, "image/heic")


def test_movie_facts() -> None:
    data = files.mp4(1280, 720, 9.25)
    moov = next((s, e) for kind, s, e in inspect.iter_boxes(data) if kind == b"moov")
    facts = inspect.movie_facts(data[moov[0] : moov[1]])
    assert (facts.width, facts.height, facts.duration) == (1280, 720, 9.25)


def test_malformed_boxes_stop_the_walk() -> None:
    assert inspect.iter_boxes(b"\x00\x00\x00\x04abcd") == []
    assert inspect.iter_boxes(b"\x00\x00\x10\x00abcd") == []  # claims more bytes than there are


def test_upload_signature_binds_every_field() -> None:
    fields = {
        "media_id": "med_" + "a" * 24,
        "key": "media/x/original.png",
        "content_type": "image/png",
        "size": 10,
        "expires": 100,
    }
    sig = uploads.signature(SECRET, **fields)
    assert uploads.verify(SECRET, sig, **fields)
    for name, other in [
        ("media_id", "med_" + "b" * 24),
        ("content_type", "image/jpeg"),
        ("size", 11),
        ("expires", 101),
        ("key", "media/y/original.png"),
    ]:
        assert not uploads.verify(SECRET, sig, **{**fields, name: other})
    assert not uploads.verify(b"z" * 32, sig, **fields)
    url = uploads.signed_url("http://h/", SECRET, **fields)
    assert url == f"http://h/uploads/{fields['media_id']}?expires=100&signature={sig}"
    assert uploads.parse_expires("100") == 100
    assert uploads.parse_expires("-1") is None and uploads.parse_expires("1e5") is None
    assert not uploads.well_formed("zz" * 32)
