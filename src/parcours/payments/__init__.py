"""Payments: structured communication, EPC QR codes, pay links, bank statements, matching."""
