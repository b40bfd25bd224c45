"""Rooms, their booking rules and the bookings people make."""
