"""Per-platform rules (API.md §7.1), unit by unit."""

from postengine.posts.schemas import Platform, PlatformOverride
from postengine.posts.validation import MIB, MediaFacts, Target, validate_post


def image(w: int = 1080, h: int = 1080, size: int = MIB, id: str = "med_img") -> MediaFacts:
    return MediaFacts(id, "image", size, w, h)


def video(size: int = 10 * MIB) -> MediaFacts:
    return MediaFacts("med_vid", "video", size, 1080, 1920)


def messages(platform: Platform, content: str | None, media: list[MediaFacts], overrides=None) -> list[str]:
    return [p["message"] for p in validate_post(content, [Target(7, platform)], media, overrides or {})]


def test_text_limits_per_platform() -> None:
    limits = {Platform.X: 280, Platform.THREADS: 500, Platform.LINKEDIN: 3000, Platform.FACEBOOK: 5000}
    for platform, limit in limits.items():
        assert messages(platform, "a" * limit, []) == []
        assert len(messages(platform, "a" * (limit + 1), [])) == 1
    assert messages(Platform.INSTAGRAM, "a" * 2201, [image()]) == [
        "Instagram captions are limited to 2,200 characters (this one has 2,201)."
    ]


def test_media_requirements() -> None:
    assert messages(Platform.TIKTOK, "hi", [image()]) == [
        "TikTok posts need a video.",
        "TikTok posts cannot include images.",
    ]
    assert messages(Platform.TIKTOK, "hi", [video()]) == []
    assert messages(Platform.YOUTUBE, "hi", [video()], {Platform.YOUTUBE: PlatformOverride(settings={"title": "t" * 101})}) == [
        "YouTube titles are limited to 100 characters (this one has 101)."
    ]
    assert messages(Platform.X, "hi", [image(), video()]) == ["X posts cannot mix images and videos."]
    assert messages(Platform.X, "hi", [MediaFacts("med_doc", "document", MIB, None, None)]) == [
        "X posts cannot include documents (PDF)."
    ]
    assert messages(Platform.LINKEDIN, "hi", [MediaFacts("med_doc", "document", MIB, None, None)]) == []


def test_image_size_and_shape() -> None:
    assert messages(Platform.X, "hi", [image(size=6 * MIB)]) == ["X images are limited to 5 MiB (med_img is 6.0 MiB)."]
    assert messages(Platform.INSTAGRAM, "", [image(1080, 1350)]) == []  # 4:5
    assert messages(Platform.INSTAGRAM, "", [image(1080, 1920)]) == [
        "Instagram images must have an aspect ratio between 4:5 and 1.91:1 (med_img is 1080×1920)."
    ]
    assert messages(Platform.INSTAGRAM, "", [image(200, 200)]) == [
        "Instagram images must be at least 320 pixels on each side (med_img is 200×200)."
    ]


def test_override_replaces_the_text_for_its_platform_only() -> None:
    overrides = {Platform.X: PlatformOverride(content="short")}
    problems = validate_post("a" * 300, [Target(1, Platform.X), Target(2, Platform.THREADS)], [], overrides)
    assert problems == []
    problems = validate_post("a" * 600, [Target(1, Platform.X), Target(2, Platform.THREADS)], [], overrides)
    assert [(p["platform"], p["account_id"]) for p in problems] == [("threads", 2)]
