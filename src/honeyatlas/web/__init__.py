"""The web layer: the Litestar application, its JSON API, the live WebSocket and the map.

It reaches storage and the live hub only through their interfaces, handed over in a
`WebContext` by the composition root; it builds no component of its own.
"""
