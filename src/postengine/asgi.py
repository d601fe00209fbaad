"""The only module that builds an app at import time: `uvicorn postengine.asgi:app`."""

from postengine.app import create_app
from postengine.logs import configure_logging

configure_logging()
app = create_app()
