"""Errors of the accounts domain.

AccountNotFound      404 `not_found` over HTTP; also a LookupError, so the command line prints
                     it as one line (see `cli.common.run_job`)
AccountRejected      ValueError: an operator's `accounts connect`/`enable` that cannot be done
├── UnknownPlatform
├── InvalidAccountName
├── DuplicateAccount
└── AccountLimitReached
"""

from postengine.errors import NotFound


class AccountNotFound(NotFound, LookupError):
    def __init__(self, account_id: object, message: str | None = None) -> None:
        super().__init__(message or f"No account {account_id} in your organization.")


class AccountRejected(ValueError):
    """A one-line reason, printed by the command line as `error: …`."""


class UnknownPlatform(AccountRejected):
    pass


class InvalidAccountName(AccountRejected):
    pass


class DuplicateAccount(AccountRejected):
    pass


class AccountLimitReached(AccountRejected):
    pass
