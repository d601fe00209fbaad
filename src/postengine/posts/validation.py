"""Per-platform publishing rules (API.md §7.1), checked at creation and on every change, and
reported all at once.

The figures follow each platform's published limits for API publishing, rounded to what every
account type accepts (a platform's premium tiers allow more; we refuse what some accounts cannot
post rather than fail at publish time):
- X: https://developer.x.com/en/docs/x-api/v1/media/upload-media/uploading-media/media-best-practices
- Instagram: https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/media
- Threads: https://developers.facebook.com/docs/threads/overview#limitations
- LinkedIn: https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/posts-api
- TikTok: https://developers.tiktok.com/doc/content-posting-api-media-transfer-guide
- YouTube: https://developers.google.com/youtube/v3/docs/videos/insert
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from postengine.posts.schemas import Platform, PlatformOverride

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PlatformRules:
    label: str
    max_chars: int
    text_name: str = "posts"  # what the text is called on the platform, for messages
    needs_media: bool = False
    needs_video: bool = False
    max_items: int = 10  # media items in one post
    max_images: int = 10
    max_videos: int = 1
    mixes_images_and_videos: bool = False
    allows_documents: bool = False
    max_image_bytes: int = 8 * MIB
    max_video_bytes: int = 500 * MIB
    min_image_side: int = 0
    # width / height bounds for images, when the platform crops or refuses others
    min_aspect: float | None = None
    max_aspect: float | None = None
    max_title_chars: int | None = None  # settings.title


RULES: dict[Platform, PlatformRules] = {
    Platform.X: PlatformRules("X", 280, max_items=4, max_images=4, max_image_bytes=5 * MIB),
    Platform.THREADS: PlatformRules("Threads", 500, max_videos=10, mixes_images_and_videos=True),
    Platform.LINKEDIN: PlatformRules(
        "LinkedIn", 3_000, max_items=20, max_images=20, allows_documents=True, max_image_bytes=10 * MIB
    ),
    Platform.INSTAGRAM: PlatformRules(
        "Instagram",
        2_200,
        text_name="captions",
        needs_media=True,
        max_videos=10,
        mixes_images_and_videos=True,
        min_image_side=320,
        min_aspect=4 / 5,
        max_aspect=1.91,
    ),
    Platform.TIKTOK: PlatformRules(
        "TikTok", 2_200, text_name="captions", needs_media=True, needs_video=True, max_items=1, max_images=0
    ),
    Platform.FACEBOOK: PlatformRules("Facebook", 5_000, max_image_bytes=10 * MIB),
    Platform.YOUTUBE: PlatformRules(
        "YouTube",
        5_000,
        text_name="descriptions",
        needs_media=True,
        needs_video=True,
        max_items=1,
        max_images=0,
        max_title_chars=100,
    ),
}


@dataclass(frozen=True, slots=True)
class MediaFacts:
    id: str
    type: str  # image | video | document
    size: int
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class Target:
    account_id: int
    platform: Platform


def effective_content(
    content: str | None, overrides: dict[Platform, PlatformOverride], platform: Platform
) -> str:
    override = overrides.get(platform)
    if override is not None and override.content is not None:
        return override.content
    return content or ""


def validate_post(
    content: str | None,
    targets: Sequence[Target],
    media: Sequence[MediaFacts],
    overrides: dict[Platform, PlatformOverride],
) -> list[dict[str, Any]]:
    """Every rule broken, as `{platform, account_id, message}`; empty when the post can go out."""
    problems: list[dict[str, Any]] = []
    for target in targets:
        rules = RULES[target.platform]
        text = effective_content(content, overrides, target.platform)
        settings = overrides[target.platform].settings if target.platform in overrides else {}
        for message in _check(rules, text, media, settings):
            problems.append(
                {"platform": str(target.platform), "account_id": target.account_id, "message": message}
            )
    return problems


def _check(
    rules: PlatformRules, text: str, media: Sequence[MediaFacts], settings: dict[str, Any]
) -> list[str]:
    out: list[str] = []
    name = rules.label
    if len(text) > rules.max_chars:
        out.append(
            f"{name} {rules.text_name} are limited to {rules.max_chars:,} characters (this one has {len(text):,})."
        )
    if not text.strip() and not media:
        out.append(f"{name} posts need text or at least one media item.")
    images = [m for m in media if m.type == "image"]
    videos = [m for m in media if m.type == "video"]
    documents = [m for m in media if m.type == "document"]
    if rules.needs_video and not videos:
        out.append(f"{name} posts need a video.")
    elif rules.needs_media and not media:
        out.append(f"{name} posts need at least one image or video.")
    if len(media) > rules.max_items:
        out.append(f"{name} posts take at most {rules.max_items} media items (this one has {len(media)}).")
    if images and len(images) > rules.max_images:
        if rules.max_images == 0:
            out.append(f"{name} posts cannot include images.")
        else:
            out.append(f"{name} posts take at most {rules.max_images} images (this one has {len(images)}).")
    if len(videos) > rules.max_videos:
        out.append(f"{name} posts take at most {rules.max_videos} video(s) (this one has {len(videos)}).")
    if images and videos and not rules.mixes_images_and_videos:
        out.append(f"{name} posts cannot mix images and videos.")
    if documents and not rules.allows_documents:
        out.append(f"{name} posts cannot include documents (PDF).")
    for item in images:
        out.extend(_check_image(rules, item))
    for item in videos:
        if item.size > rules.max_video_bytes:
            out.append(
                f"{name} videos are limited to {rules.max_video_bytes // MIB} MiB ({item.id} is {_mib(item.size)} MiB)."
            )
    title = settings.get("title")
    if rules.max_title_chars is not None and isinstance(title, str) and len(title) > rules.max_title_chars:
        out.append(
            f"{name} titles are limited to {rules.max_title_chars} characters (this one has {len(title)})."
        )
    return out


def _check_image(rules: PlatformRules, item: MediaFacts) -> list[str]:
    out: list[str] = []
    name = rules.label
    if item.size > rules.max_image_bytes:
        out.append(
            f"{name} images are limited to {rules.max_image_bytes // MIB} MiB ({item.id} is {_mib(item.size)} MiB)."
        )
    if item.width and item.height:
        if min(item.width, item.height) < rules.min_image_side:
            out.append(
                f"{name} images must be at least {rules.min_image_side} pixels on each side "
                f"({item.id} is {item.width}×{item.height})."
            )
        aspect = item.width / item.height
        if (
            rules.min_aspect is not None
            and rules.max_aspect is not None
            and not rules.min_aspect - 0.005 <= aspect <= rules.max_aspect + 0.005
        ):
            out.append(
                f"{name} images must have an aspect ratio between 4:5 and 1.91:1 "
                f"({item.id} is {item.width}×{item.height})."
            )
    return out


def _mib(size: int) -> str:
    return f"{size / MIB:.1f}"
