from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import ExifTags, Image, ImageFile

from photosplat_ingest.validation import (
    FileRejected,
    Limits,
    Rule,
    check_count,
    check_declared,
    display_name,
    extension,
    sanitize,
)

LIMITS = Limits()


def _rule(data: bytes, limits: Limits = LIMITS) -> Rule:
    with pytest.raises(FileRejected) as info:
        sanitize(data, limits)
    return info.value.rule


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_declaring(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of ``width`` x ``height``: the all-zero rows compress to a few KB."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def test_jpeg_is_reencoded_without_personal_exif(make_photo) -> None:
    result = sanitize(make_photo(gps=True, focal_35=36), LIMITS)

    img = Image.open(io.BytesIO(result.data))
    exif = img.getexif()
    assert img.format == "JPEG" and result.ext == ".jpg" and result.content_type == "image/jpeg"
    assert ExifTags.IFD.GPSInfo not in exif and exif.get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert ExifTags.Base.Artist not in exif and ExifTags.Base.BodySerialNumber not in exif
    details = exif.get_ifd(ExifTags.IFD.Exif)
    assert float(details[ExifTags.Base.FocalLength]) == 24.0
    assert details[ExifTags.Base.FocalLengthIn35mmFilm] == 36
    assert ExifTags.Base.DateTimeOriginal not in details
    assert (exif[ExifTags.Base.Make], exif[ExifTags.Base.Model]) == ("Canon", "EOS 5D")
    assert "icc_profile" not in img.info and "xmp" not in img.info
    assert (result.width, result.height) == (160, 120)
    assert result.focal_length_px == pytest.approx(160.0)  # 36 mm equivalent -> f = max side
    assert result.camera == "Canon EOS 5D"


def test_exif_orientation_is_applied(make_photo) -> None:
    # 6 = rotate 90° clockwise to display: a 160x120 sensor image becomes 120x160.
    result = sanitize(make_photo(160, 120, orientation=6), LIMITS)

    img = Image.open(io.BytesIO(result.data))
    assert img.size == (120, 160) == (result.width, result.height)
    assert ExifTags.Base.Orientation not in img.getexif()


def test_png_stays_png_and_webp_becomes_jpeg(make_photo) -> None:
    png = sanitize(make_photo(fmt="PNG", gps=True), LIMITS)
    webp = sanitize(make_photo(fmt="WEBP"), LIMITS)

    reopened = Image.open(io.BytesIO(png.data))
    assert reopened.format == "PNG" and png.ext == ".png"
    assert reopened.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert Image.open(io.BytesIO(webp.data)).format == "JPEG" and webp.ext == ".jpg"
    assert png.focal_length_px is None  # no 35 mm equivalent: SfM estimates it


def test_text_file_named_jpg_is_refused() -> None:
    assert _rule(b"hello, I am not a photo\n" * 10) == Rule.FORMAT


def test_other_image_format_is_refused() -> None:
    out = io.BytesIO()
    Image.new("RGB", (200, 200)).save(out, "TIFF")
    assert _rule(out.getvalue()) == Rule.FORMAT


def test_truncated_jpeg_is_refused(make_photo) -> None:
    data = make_photo(400, 300)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert _rule(data[: len(data) // 2]) == Rule.CORRUPT


def test_too_small_image_is_refused(make_photo) -> None:
    assert _rule(make_photo(99, 99)) == Rule.MIN_SIDE
    assert sanitize(make_photo(100, 100), LIMITS).width == 100


def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = _png_declaring(20000, 20000)
    assert len(bomb) < 100_000
    assert _rule(bomb) == Rule.MAX_PIXELS


def test_pixel_limit_is_checked_before_decoding() -> None:
    # 12000 x 11000 = 132 MP: under Pillow's own error threshold, over ours.
    with pytest.warns(Image.DecompressionBombWarning):
        assert _rule(_png_declaring(12000, 11000)) == Rule.MAX_PIXELS
    assert _rule(_png_declaring(300, 300), Limits(max_pixels=200 * 200)) == Rule.MAX_PIXELS


def test_byte_limit_and_empty_file(make_photo) -> None:
    assert _rule(make_photo(), Limits(max_file_bytes=100)) == Rule.MAX_BYTES
    assert _rule(b"") == Rule.EMPTY


def test_count_limits() -> None:
    none = check_count(0, LIMITS)
    assert none is not None and none.rule == Rule.MIN_FILES and "at least 3" in none.message
    assert check_count(2, LIMITS).rule == Rule.MIN_FILES  # type: ignore[union-attr]
    assert check_count(3, LIMITS) is None
    assert check_count(11, Limits(max_files=10)).rule == Rule.MAX_FILES  # type: ignore[union-attr]


def test_declared_file_checks() -> None:
    assert check_declared("a.JPG", 10, LIMITS) is None
    assert check_declared("a.gif", 10, LIMITS).rule == Rule.EXTENSION  # type: ignore[union-attr]
    assert check_declared("jpg", 10, LIMITS).rule == Rule.EXTENSION  # type: ignore[union-attr]
    assert check_declared("a.png", 0, LIMITS).rule == Rule.EMPTY  # type: ignore[union-attr]
    assert check_declared("a.png", 101, Limits(max_file_bytes=100)).rule == Rule.MAX_BYTES  # type: ignore[union-attr]


def test_path_like_names_are_display_names_only(make_photo) -> None:
    name = display_name("../evil.jpg", 0)
    assert name == "../evil.jpg" and extension(name) == ".jpg"
    assert check_declared(name, 100, LIMITS) is None
    assert display_name("\x00\n", 4) == "file #5"
    assert extension("..") == "" and extension(".jpg") == ""
