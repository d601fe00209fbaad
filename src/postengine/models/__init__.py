"""All ORM tables, one module per table; importing this package registers them on `Base.metadata`."""

from postengine.models.api_key import ApiKey
from postengine.models.base import Base
from postengine.models.credit_account import CreditAccount
from postengine.models.credit_ledger import CreditLedgerEntry
from postengine.models.generation import Generation
from postengine.models.idempotency_key import IdempotencyKey
from postengine.models.media import Media
from postengine.models.organization import Organization
from postengine.models.post import Post, PostMedia
from postengine.models.post_destination import PostDestination
from postengine.models.sandbox_outbox import SandboxOutboxEntry
from postengine.models.social_account import SocialAccount

__all__ = [
    "ApiKey",
    "Base",
    "CreditAccount",
    "CreditLedgerEntry",
    "Generation",
    "IdempotencyKey",
    "Media",
    "Organization",
    "Post",
    "PostDestination",
    "PostMedia",
    "SandboxOutboxEntry",
    "SocialAccount",
]
