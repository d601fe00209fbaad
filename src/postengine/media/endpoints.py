"""HTTP endpoints (being built)."""

from fastapi import APIRouter

router = APIRouter()

# The signed upload URL (`PUT`, no API key), outside /api/v1.
uploads_router = APIRouter()
