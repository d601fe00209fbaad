"""The only module that builds an app at import time: `uvicorn postengine.asgi:app`."""

from postengine.app import create_app
from postengine.config import Settings
from postengine.logs import configure_logging

settings = Settings()
configure_logging(json=settings.log_json is not False, level=settings.log_level)
app = create_app(settings)
