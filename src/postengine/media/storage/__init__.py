"""Where media bytes live. `MediaStorage` is the interface; `LocalStorage` is the embedded one."""

from postengine.media.storage.base import MediaStorage, StoredObject
from postengine.media.storage.local import LocalStorage

__all__ = ["LocalStorage", "MediaStorage", "StoredObject"]
