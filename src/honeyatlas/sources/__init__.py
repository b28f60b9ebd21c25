"""Sources: bytes in from a transport, framed into raw records, handed to the pipeline.

Each source declares its delivery guarantee in its module docstring.
"""
