from postengine.errors import ApiError


class UnknownOrganization(ApiError):
    status, code = 404, "not_found"


class AlreadySettled(Exception):
    """The generation was already completed or refunded; nothing was changed."""
