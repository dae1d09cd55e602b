"""Errors raised by domain rules; each carries a message fit for an import report."""


class DomainError(ValueError):
    """A value breaks a rule of the collection domain."""


class InvalidAmount(DomainError):
    """An amount is not a positive number with at most the currency's decimals."""


class InvalidCurrency(DomainError):
    """A currency code is not an ISO 4217 currency in use."""


class InvalidStructuredCommunication(DomainError):
    """A Belgian structured communication fails its format or mod-97 check."""
