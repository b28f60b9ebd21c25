"""Transforms: functions and bounded stateful objects that take an Event and return a new one.

Nothing here does I/O or mutates an event (`msgspec.structs.replace` builds the new one).
"""
