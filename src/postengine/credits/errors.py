from postengine.errors import ApiError


class UnknownOrganization(ApiError):
    status, code = 404, "not_found"
