"""Bookings domain tests; the bookings domain arrives with its own issue."""
