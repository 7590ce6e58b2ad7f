"""Signals libraries sends so that other apps can react without being imported here."""

from django.dispatch import Signal

# Sent after commit with `librarian_id` when a librarian is signed off their desk
# (by an admin, or automatically at closing time).
librarian_signed_off = Signal()
