"""GraphQL types per domain (`call`, `user`), the typed context, IDs and loaders.

Types import only the context and each other; resolvers import types; `root` puts the
resolvers on the root types; `build` assembles the schema at the end of that chain. Nothing
is imported here, so any module of the package imports on its own.
"""
