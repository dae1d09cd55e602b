"""The HTTP side of parcours: carrier webhooks and the debtor's personal links."""
